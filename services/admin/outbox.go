package admin

import (
	"context"
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/paging"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// ListOutboxMessages reads the development SMS outbox.
func (s *Server) ListOutboxMessages(ctx context.Context, req *pushauthv1.ListOutboxMessagesRequest) (*pushauthv1.ListOutboxMessagesResponse, error) {
	if s.outbox == nil {
		return nil, fault.New(fault.FailedPrecondition, "a real SMS provider is configured: there is no outbox to read")
	}
	msgs, err := s.outbox.ListOutboxMessages(ctx, req.GetPhoneNumber(), paging.Size(req.GetLimit(), 20, 100))
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListOutboxMessagesResponse{}
	for _, m := range msgs {
		resp.Messages = append(resp.Messages, &pushauthv1.OutboxMessage{
			Id:          strconv.FormatInt(m.ID, 10),
			PhoneNumber: m.PhoneNumber,
			Body:        m.Body,
			CreateTime:  timestamppb.New(m.CreatedAt),
		})
	}
	return resp, nil
}
