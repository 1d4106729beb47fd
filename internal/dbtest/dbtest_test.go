package dbtest

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@127.0.0.1:5432/test": "postgres://u:xxx@127.0.0.1:5432/test",
		"postgres://postgres@127.0.0.1:5432/test": "postgres://postgres@127.0.0.1:5432/test",
		"root:pw@tcp(127.0.0.1:3306)/test":        "root:xxx@tcp(127.0.0.1:3306)/test",
		"root@tcp(127.0.0.1:3306)/test":           "root@tcp(127.0.0.1:3306)/test",
		"/tmp/x.db":                               "/tmp/x.db",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv("OUTRIGGER_REQUIRE_REDIS", "")
	t.Setenv(EnvRequire, "0")
	if Required() {
		t.Error("got Required with nothing set, want false")
	}
	t.Setenv(EnvRequire, "1")
	if !Required() {
		t.Errorf("got not Required with %s=1, want true", EnvRequire)
	}
	t.Setenv(EnvPostgres, "")
	t.Setenv("DATABASE_URL", "/some/sqlite.db")
	if got := PostgresDSN(); got != DefaultPostgres {
		t.Errorf("PostgresDSN: got %q, want the default (DATABASE_URL is not a postgres URL)", got)
	}
	t.Setenv("DATABASE_URL", "postgres://x@h/db")
	if got := PostgresDSN(); got != "postgres://x@h/db" {
		t.Errorf("PostgresDSN: got %q, want DATABASE_URL", got)
	}
	t.Setenv(EnvMySQL, "u@tcp(h:1)/d")
	if got := MySQLDSN(); got != "u@tcp(h:1)/d" {
		t.Errorf("MySQLDSN: got %q, want %s", got, EnvMySQL)
	}
	if a, b := Name("T"), Name("T"); a == b || !strings.HasPrefix(a, "t_") || len(a) != 14 {
		t.Errorf("Name: got %q and %q, want two different t_<12 hex>", a, b)
	}
}
