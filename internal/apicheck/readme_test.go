package apicheck

import (
	"go/ast"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestReadmeListsEveryErrorSentinel keeps the README's list of the errors a
// user tests with errors.Is complete: every exported Err variable of the dax
// package must be named in the paragraph that lists them.
func TestReadmeListsEveryErrorSentinel(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(moduleRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "Errors are sentinels tested with `errors.Is`")
	if start < 0 {
		t.Fatal("README.md has no paragraph starting \"Errors are sentinels tested with `errors.Is`\"")
	}
	end := strings.Index(text[start:], "\n\n")
	if end < 0 {
		end = len(text) - start
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`(Err[A-Za-z]+)`").FindAllStringSubmatch(text[start:start+end], -1) {
		listed[m[1]] = true
	}
	var sentinels []string
	for _, f := range packages(t)["dax"] {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if n.IsExported() && strings.HasPrefix(n.Name, "Err") {
						sentinels = append(sentinels, n.Name)
					}
				}
			}
		}
	}
	if len(sentinels) < 10 {
		t.Fatalf("found only %d error sentinels in dax: %v", len(sentinels), sentinels)
	}
	sort.Strings(sentinels)
	for _, name := range sentinels {
		if !listed[name] {
			t.Errorf("README.md's error paragraph does not name dax.%s", name)
		}
	}
}
