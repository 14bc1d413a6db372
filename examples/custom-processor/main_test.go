package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/weir-dev/weir/cli"
	"github.com/weir-dev/weir/examples/custom-processor/units"
)

func lint(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	root := cli.NewRoot(&out, &errOut)
	root.SetArgs(append([]string{"lint"}, args...))
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// plainErr is what lint said about pipe.yaml before units was registered: what plain
// pipectl (the same CLI without the plugin) says.
var plainErr string

func TestMain(m *testing.M) {
	_, errOut, err := lint("pipe.yaml")
	if err != nil {
		plainErr = errOut
	}
	units.Register()
	goleak.VerifyTestMain(m)
}

func TestPlainPipectlRejectsTheSpec(t *testing.T) {
	if !strings.Contains(plainErr, `processors[0]: unknown processor "units"`) {
		t.Fatalf("plain pipectl lint: %q", plainErr)
	}
}

func TestTheExampleBinaryLintsTheSpec(t *testing.T) {
	out, errOut, err := lint("pipe.yaml")
	if err != nil {
		t.Fatalf("lint: %v\n%s", err, errOut)
	}
	for _, want := range []string{"plugin: units", "spike.max-step: \"20\"", "spike.max-run: \"3\""} {
		if !strings.Contains(out, want) && !strings.Contains(out, strings.ReplaceAll(want, `"`, "")) {
			t.Errorf("normalized spec lacks %s:\n%s", want, out)
		}
	}
	// bad parameters are lint errors naming the key
	bad := strings.Replace(readFile(t, "pipe.yaml"), "F->C", "F->X", 1)
	bad = strings.Replace(bad, "spike.max-step: 20", "spike.max-step: -1", 1)
	f := t.TempDir() + "/bad.yaml"
	if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = lint(f)
	if err == nil {
		t.Fatal("a bad spec linted clean")
	}
	for _, want := range []string{`processors[0].conversions: unknown conversion "F->X" for temp`, "processors[0].spike.max-step: -1 is below the minimum 0"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("lint errors lack %q:\n%s", want, errOut)
		}
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
