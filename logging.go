package main

import (
	"io"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/writer"
)

// newLogger writes warnings and errors to stderr and everything else to
// stdout. dockerd logs a plugin's stderr at error level and its stdout at
// info level, so this split keeps "secret delivered" lines out of an
// operator's error filter while every failure still lands there.
//
// timestamps=false leaves the time of a text line to dockerd, which stamps
// each line it logs for a plugin. JSON lines keep their time: a log
// pipeline parses such a line on its own, and dockerd's stamp is outside it.
func newLogger(level logrus.Level, format string, timestamps bool, stdout, stderr io.Writer) *logrus.Logger {
	l := logrus.New()
	l.SetLevel(level)
	if format == "json" {
		l.SetFormatter(&logrus.JSONFormatter{})
	} else {
		// No colours: the lines end up in dockerd's log.
		l.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true, DisableTimestamp: !timestamps})
	}
	l.SetOutput(io.Discard)
	l.AddHook(&writer.Hook{Writer: stderr, LogLevels: []logrus.Level{
		logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel,
	}})
	l.AddHook(&writer.Hook{Writer: stdout, LogLevels: []logrus.Level{
		logrus.InfoLevel, logrus.DebugLevel, logrus.TraceLevel,
	}})
	return l
}
