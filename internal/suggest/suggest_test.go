package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"vault.field", "vault.field", 0},
		{"vault.feild", "vault.field", 1}, // a transposition is one edit
		{"vaultt", "vault", 1},
		{"chek", "check", 1},
		{"versoin", "version", 1},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{string(make([]byte, 65)), "x", 3}, // long: never a typo
	} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
