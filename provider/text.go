package provider

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Whoever may create a secret writes its labels, and whoever may deploy a
// service writes its labels; both end up in errors that the leader's dockerd
// log shows to operators. The helpers here keep such text on one line and
// short, so that a label can neither forge log lines nor flood the log.

// maxEcho is how many bytes of a label value an error quotes.
const maxEcho = 64

// MaxErrLen bounds Response.Err (and its log line), in bytes.
const MaxErrLen = 1024

// quote renders a label value for an error: Go-quoted, so that a newline or
// a control character shows as an escape, and cut at maxEcho bytes.
func quote(v string) string {
	if len(v) <= maxEcho {
		return strconv.Quote(v)
	}
	return strconv.Quote(cut(v, maxEcho)) + "…"
}

// plainKey is a label key that reads unambiguously as it is.
var plainKey = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// showKey renders a label key as written when it is a plain name (every key
// swarmvault knows is), quoted otherwise.
func showKey(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return quote(k)
}

// cut shortens s to at most n bytes without splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// clip shortens s to at most n bytes, marking the cut with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return cut(s, n) + "…"
}

// oneLine makes msg one line of at most MaxErrLen bytes: line breaks and
// tabs become single spaces, other control characters Go escapes. It is the
// last guard before a message leaves the plugin; the sentences themselves
// already quote what users wrote.
func oneLine(msg string) string {
	var b strings.Builder
	space := false
	for _, r := range msg {
		switch {
		case r == '\n' || r == '\r' || r == '\t' || r == '\u2028' || r == '\u2029':
			space = true
			continue
		case space:
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			b.WriteString(strings.Trim(strconv.QuoteRune(r), "'"))
			continue
		}
		b.WriteRune(r)
	}
	return clip(strings.TrimSpace(b.String()), MaxErrLen-len("…"))
}
