package apicheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// moduleRoot is this package's directory, two levels below the root.
const moduleRoot = "../.."

// fset holds the positions of every file parsed here.
var fset = token.NewFileSet()

// packages parses every package directory of the module (test files,
// testdata and hidden directories left out) and returns its files by
// directory, relative to the module root.
func packages(t *testing.T) map[string][]*ast.File {
	t.Helper()
	pkgs := map[string][]*ast.File{}
	err := filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != moduleRoot && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(moduleRoot, filepath.Dir(path))
		pkgs[rel] = append(pkgs[rel], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("found only %d packages under %s", len(pkgs), moduleRoot)
	}
	return pkgs
}

// undocumented returns the exported identifiers of a package's files that
// have no doc comment: functions, methods of exported types, types, constants,
// variables, and the exported fields of exported struct types and methods
// of exported interfaces. A name in a parenthesized const or var group may
// rely on the group's comment, as go doc shows them together; a field may
// use a line comment, or a comment over a run of fields with no blank line
// between them.
func undocumented(files []*ast.File) []string {
	var bad []string
	for _, f := range files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() || (d.Recv != nil && !exportedRecv(d.Recv)) {
					continue
				}
				if d.Doc == nil {
					bad = append(bad, funcName(d))
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						if s.Doc == nil && (d.Doc == nil || d.Lparen.IsValid()) {
							bad = append(bad, "type "+s.Name.Name)
						}
						bad = append(bad, undocumentedMembers(s)...)
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() && s.Doc == nil && s.Comment == nil && d.Doc == nil {
								bad = append(bad, n.Name)
							}
						}
					}
				}
			}
		}
	}
	return bad
}

func undocumentedMembers(s *ast.TypeSpec) []string {
	var list *ast.FieldList
	switch t := s.Type.(type) {
	case *ast.StructType:
		list = t.Fields
	case *ast.InterfaceType:
		list = t.Methods
	default:
		return nil
	}
	var bad []string
	covered, prevLine := false, -2
	for _, fld := range list.List {
		// A comment may cover a run of fields with no blank line between
		// them ("Workers per kind." over Writers, Readers, ...).
		line := fset.Position(fld.Pos()).Line
		covered = fld.Doc != nil || fld.Comment != nil || (covered && line == prevLine+1)
		prevLine = fset.Position(fld.End()).Line
		if covered {
			continue
		}
		for _, n := range fld.Names {
			if n.IsExported() {
				bad = append(bad, s.Name.Name+"."+n.Name)
			}
		}
	}
	return bad
}

func exportedRecv(recv *ast.FieldList) bool {
	t := recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
		case *ast.IndexExpr:
			t = x.X
		case *ast.IndexListExpr:
			t = x.X
		case *ast.Ident:
			return x.IsExported()
		default:
			return false
		}
	}
}

func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil {
		return "func " + d.Name.Name
	}
	t := d.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return "method " + id.Name + "." + d.Name.Name
	}
	return "method " + d.Name.Name
}

// TestEveryExportedIdentifierHasADocComment walks every package of the
// module and fails on an exported identifier without a doc comment, or a
// package without a package comment, so that go doc of each reads as a
// guide.
func TestEveryExportedIdentifierHasADocComment(t *testing.T) {
	pkgs := packages(t)
	dirs := make([]string, 0, len(pkgs))
	for dir := range pkgs {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		files := pkgs[dir]
		hasPkgDoc := false
		for _, f := range files {
			hasPkgDoc = hasPkgDoc || f.Doc != nil
		}
		if !hasPkgDoc {
			t.Errorf("%s: no package comment", dir)
		}
		if files[0].Name.Name == "main" || strings.HasPrefix(filepath.ToSlash(dir), "internal/") {
			continue // a command's API is its flags and --help; internal is no API
		}
		for _, name := range undocumented(files) {
			t.Errorf("%s: %s has no doc comment", dir, name)
		}
	}
}

// TestUndocumentedCatchesWhatItShould keeps the checker honest: it must
// flag each kind of undocumented exported identifier and pass documented
// and unexported ones.
func TestUndocumentedCatchesWhatItShould(t *testing.T) {
	src := `package p

// Documented is.
func Documented() {}
func Bare() {}
func unexported() {}

// T is.
type T struct {
	// A is.
	A int
	B int // B is.

	C int
	d int
	// E and F are.
	E int
	F int

	G int
}

func (T) M() {}
func (t) m2() {}

type t struct{}

// I is.
type I interface{ N() }

type U int

const K = 1

// Group is documented as a whole.
const (
	G1 = iota
	G2
)

var (
	V1 = 1 // V1 is.
	V2 = 2
)
`
	f, err := parser.ParseFile(fset, "p.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(undocumented([]*ast.File{f}), ",")
	want := "func Bare,T.C,T.G,method T.M,I.N,type U,K,V2"
	if got != want {
		t.Fatalf("undocumented = %s, want %s", got, want)
	}
}

// TestDaxAPINamesNoInternalPackage fails when an exported declaration of
// package dax, or of any other non-internal package, mentions an internal
// package: such an identifier would be
// test plumbing (or an implementation detail) on the public surface, which
// users could see but not use.
func TestDaxAPINamesNoInternalPackage(t *testing.T) {
	for dir, files := range packages(t) {
		if strings.HasPrefix(filepath.ToSlash(dir), "internal/") || files[0].Name.Name == "main" {
			continue
		}
		for _, f := range files {
			checkNoInternalInAPI(t, dir, f)
		}
	}
}

func checkNoInternalInAPI(t *testing.T, dir string, f *ast.File) {
	{
		internal := map[string]bool{}
		for _, imp := range f.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			if !strings.Contains(path, "/internal/") {
				continue
			}
			name := filepath.Base(path)
			if imp.Name != nil {
				name = imp.Name.Name
			}
			internal[name] = true
		}
		for _, decl := range f.Decls {
			var nodes []ast.Node
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() && (d.Recv == nil || exportedRecv(d.Recv)) {
					nodes = append(nodes, d.Type)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							nodes = append(nodes, exportedParts(s.Type)...)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() && s.Type != nil {
								nodes = append(nodes, s.Type)
							}
						}
					}
				}
			}
			for _, n := range nodes {
				ast.Inspect(n, func(n ast.Node) bool {
					if sel, ok := n.(*ast.SelectorExpr); ok {
						if id, ok := sel.X.(*ast.Ident); ok && internal[id.Name] {
							t.Errorf("%s exports %s.%s, from an internal package", dir, id.Name, sel.Sel.Name)
						}
					}
					return true
				})
			}
		}
	}
}

// exportedParts returns what of a type is visible outside the package: for
// a struct, the types of its exported fields; otherwise the whole type.
func exportedParts(t ast.Expr) []ast.Node {
	st, ok := t.(*ast.StructType)
	if !ok {
		return []ast.Node{t}
	}
	var nodes []ast.Node
	for _, fld := range st.Fields.List {
		for _, n := range fld.Names {
			if n.IsExported() {
				nodes = append(nodes, fld.Type)
				break
			}
		}
		if len(fld.Names) == 0 {
			nodes = append(nodes, fld.Type) // embedded: promoted
		}
	}
	return nodes
}
