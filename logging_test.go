package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestLoggerTimestamps(t *testing.T) {
	for _, tt := range []struct {
		format     string
		timestamps bool
		want       bool
	}{
		{"text", true, true},
		{"text", false, false},
		// A JSON line keeps its time: a pipeline parses it on its own.
		{"json", false, true},
	} {
		var out bytes.Buffer
		newLogger(logrus.InfoLevel, tt.format, tt.timestamps, &out, io.Discard).Info("hello")
		if got := strings.Contains(out.String(), "time="+`"`) || strings.Contains(out.String(), `"time":`); got != tt.want {
			t.Errorf("%s, timestamps=%v: %q has a time: %v, want %v", tt.format, tt.timestamps, out.String(), got, tt.want)
		}
	}
}

func TestLoggerSplitsByLevel(t *testing.T) {
	var out, errs bytes.Buffer
	log := newLogger(logrus.DebugLevel, "text", true, &out, &errs)
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e")
	if o := out.String(); !strings.Contains(o, "msg=d") || !strings.Contains(o, "msg=i") || strings.Contains(o, "msg=w") || strings.Contains(o, "msg=e") {
		t.Errorf("stdout:\n%s", o)
	}
	if e := errs.String(); !strings.Contains(e, "msg=w") || !strings.Contains(e, "msg=e") || strings.Contains(e, "msg=i") {
		t.Errorf("stderr:\n%s", e)
	}
}
