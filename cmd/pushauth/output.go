package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// output prints a response: as JSON with --json, else with people.
func output(w io.Writer, cf *connFlags, m proto.Message, people func(io.Writer) error) error {
	if cf.json {
		return printJSON(w, m)
	}
	return people(w)
}

// printJSON prints m as indented protojson, leaving out unset fields.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: false}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// table prints rows in aligned columns under a header. Cells are sanitized,
// and empty ones are shown as "-".
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: newTabWriter(w)}
	fmt.Fprintln(t.tw, strings.Join(header, "\t"))
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		cells[i] = sanitize(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// sanitize quotes s if it has control characters or invalid UTF-8, so that
// text from the server can neither break the table nor drive the terminal.
func sanitize(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// fmtTime formats ts in RFC 3339, UTC; "" if unset.
func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// fmtDuration formats d briefly ("2m", "1m30s"); "" if unset.
func fmtDuration(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	s := d.AsDuration().String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// fmtMatching names a number matching mode as the flags do; "" if unspecified.
func fmtMatching(m pushauthv1.NumberMatchingMode) string {
	switch m {
	case pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_UNSPECIFIED:
		return ""
	case pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE:
		return "none"
	case pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER:
		return "number"
	case pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE:
		return "code"
	}
	return m.String()
}

func fmtBool(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// fmtDetails formats audit details as sorted key=value pairs.
func fmtDetails(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		v := m[k]
		if v == "" || strings.ContainsAny(v, " =\"") {
			v = strconv.Quote(v)
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}

// fmtWait says how long to wait in words, rounded up to whole seconds
// ("30 seconds", "1 minute 5 seconds", "20 hours 55 minutes").
func fmtWait(d time.Duration) string {
	if d < time.Second {
		d = time.Second
	}
	d = (d + time.Second - 1).Truncate(time.Second)
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	h, m, s := int64(d/time.Hour), int64(d%time.Hour/time.Minute), int64(d%time.Minute/time.Second)
	var parts []string
	switch {
	case h > 0:
		if s > 0 { // round up: never say less than the wait
			m++
			if m == 60 {
				h, m = h+1, 0
			}
		}
		parts = append(parts, unit(h, "hour"))
		if m > 0 {
			parts = append(parts, unit(m, "minute"))
		}
	case m > 0:
		parts = append(parts, unit(m, "minute"))
		if s > 0 {
			parts = append(parts, unit(s, "second"))
		}
	default:
		parts = append(parts, unit(s, "second"))
	}
	return strings.Join(parts, " ")
}

// fmtClock formats a local time of day, with the date when it is not today.
func fmtClock(t time.Time) string {
	t = t.Local()
	now := time.Now()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateTime)
}
