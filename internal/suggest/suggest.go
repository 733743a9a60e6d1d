// Package suggest tells a typo from a name: the distance behind every
// "did you mean …?" the plugin and its commands print (a label, a driver,
// a flag, a command).
package suggest

// Distance is the Levenshtein distance of a and b, in bytes (the names
// compared are ASCII), with a transposition of two neighbours (versoin,
// vualt) counted as one edit. Past 64 bytes it is 3: a typo of a short
// name is not long, and the table stays small.
func Distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 3
	}
	// d[i][j] is the distance of a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
