package server

import (
	"fmt"
	"log/slog"
	"strings"
)

// errorLog receives go-smtp's own error messages. A client that hangs up
// (a health check, Postfix closing a cached connection) is routine, so it
// is logged at debug level; anything else is a warning.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.emit(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.emit(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (e errorLog) emit(msg string) {
	for _, routine := range []string{"connection reset by peer", "broken pipe", "EOF", "use of closed network connection"} {
		if strings.Contains(msg, routine) {
			e.log.Debug("smtp", "detail", msg)
			return
		}
	}
	e.log.Warn("smtp", "detail", msg)
}
