package store

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"
)

// Transient reports whether err means the database connection was lost or
// the server is going away (a terminated backend, a restart, a dropped TCP
// connection), so the same call may well succeed on another connection. It
// knows nothing of a particular driver: PostgreSQL errors are recognised by
// their SQLSTATE. Callers answer such errors Unavailable, never Internal.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		switch code := st.SQLState(); {
		case code == "57P01", code == "57P02", code == "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		case len(code) == 5 && code[:2] == "08": // connection exception
			return true
		}
		return false
	}
	var op *net.OpError
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &op)
}
