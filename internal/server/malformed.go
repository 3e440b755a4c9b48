package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/requestid"
)

// codec is gRPC's proto codec with one change: a request that does not
// decode (bad wire bytes, a string that is not UTF-8) is answered
// InvalidArgument naming the problem, not Internal. grpc-go turns every
// Unmarshal error into Internal, so Unmarshal instead reports success,
// leaves the message empty and records the error against it; the observe
// interceptor, which sees every decoded request before anything else does,
// takes the record back (decodeError) and answers with it.
type codec struct {
	encoding.CodecV2
	bad sync.Map // protov2.Message (pointer) -> *fault.Error
}

func newCodec() *codec {
	return &codec{CodecV2: encoding.GetCodecV2(proto.Name)}
}

// Unmarshal decodes data into v, recording rather than returning a decoding
// error of a proto message.
func (c *codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(protov2.Message)
	if !ok {
		return err
	}
	c.bad.Store(m, decodeFault(data.Materialize(), m, err))
	protov2.Reset(m)
	return nil
}

// decodeError returns (and forgets) the decoding error recorded for m.
func (c *codec) decodeError(m any) error {
	if c == nil {
		return nil
	}
	if _, ok := m.(protov2.Message); !ok {
		return nil
	}
	if e, ok := c.bad.LoadAndDelete(m); ok {
		return e.(*fault.Error)
	}
	return nil
}

// decodeFault explains why b is not an m.
func decodeFault(b []byte, m protov2.Message, err error) *fault.Error {
	md := m.ProtoReflect().Descriptor()
	if field, ok := badUTF8Field(b, md, ""); ok {
		return fault.Invalid(field, "not valid UTF-8; strings must be UTF-8 encoded")
	}
	return fault.New(fault.InvalidArgument, fmt.Sprintf("the request is not a valid %s protobuf message (%v); check that client and server use the same API", md.FullName(), err))
}

// badUTF8Field finds the (first) string field of b, a serialised md, that is
// not UTF-8, and returns its path.
func badUTF8Field(b []byte, md protoreflect.MessageDescriptor, prefix string) (string, bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return "", false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		name := prefix + string(fd.Name())
		switch {
		case fd.Kind() == protoreflect.StringKind && !utf8.Valid(v):
			return name, true
		case fd.Kind() == protoreflect.MessageKind:
			if f, ok := badUTF8Field(v, fd.Message(), name+"."); ok {
				return f, true
			}
		}
	}
	return "", false
}

// checkTimes refuses Durations and Timestamps whose fields are out of range
// (nanos outside ±999,999,999, nanos and seconds of different signs, a year
// outside 1–9999). Converting them would silently normalise them:
// {seconds: 60, nanos: 2000000000} would become 62 s.
func checkTimes(m protoreflect.Message, prefix string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				if err = checkTime(l.Get(i).Message(), fmt.Sprintf("%s[%d]", name, i)); err != nil {
					return false
				}
			}
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = checkTime(mv.Message(), fmt.Sprintf("%s[%v]", name, k.Interface()))
				return err == nil
			})
			return err == nil
		default:
			err = checkTime(v.Message(), name)
		}
		return err == nil
	})
	return err
}

func checkTime(m protoreflect.Message, name string) error {
	switch x := m.Interface().(type) {
	case *durationpb.Duration:
		if err := x.CheckValid(); err != nil {
			return fault.Invalid(name, "not a valid duration: "+strings.TrimPrefix(err.Error(), "proto: ")+
				"; nanos must be within ±999999999 and have the sign of seconds")
		}
		return nil
	case *timestamppb.Timestamp:
		if err := x.CheckValid(); err != nil {
			return fault.Invalid(name, "not a valid timestamp: "+strings.TrimPrefix(err.Error(), "proto: ")+
				"; nanos must be within 0–999999999 and the date within the years 1–9999")
		}
		return nil
	}
	return checkTimes(m, name+".")
}

// refusedCalls is a stats handler that logs and counts the calls gRPC
// refuses before any interceptor runs (a unary request over the size
// limit, one that cannot be decompressed), which observe never sees.
type refusedCalls struct{ obs *observe }

type callRecordKey struct{}

// callRecord notes whether observe saw a call.
type callRecord struct {
	method string
	seen   atomic.Bool
}

// markSeen tells refusedCalls that observe handles the call of ctx.
func markSeen(ctx context.Context) {
	if r, ok := ctx.Value(callRecordKey{}).(*callRecord); ok {
		r.seen.Store(true)
	}
}

func (h refusedCalls) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, callRecordKey{}, &callRecord{method: info.FullMethodName})
}

func (h refusedCalls) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok {
		return
	}
	r, ok := ctx.Value(callRecordKey{}).(*callRecord)
	if !ok || r.seen.Load() {
		return
	}
	ctx = requestid.With(ctx, requestid.New())
	start := h.obs.now().Add(-end.EndTime.Sub(end.BeginTime))
	h.obs.metrics.refusedEarly(r.method, status.Code(end.Error))
	h.obs.done(ctx, r.method, start, end.Error)
}

func (h refusedCalls) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (h refusedCalls) HandleConn(context.Context, stats.ConnStats)                       {}
