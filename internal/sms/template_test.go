package sms

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	d := TemplateData{AppName: "Mijn Portal", Code: "123456", Link: "https://a.example/v/tok", TTLMinutes: 10}
	tests := []struct{ locale, want string }{
		{"nl", "Je verificatiecode voor Mijn Portal is 123456"},
		{"nl-BE", "Je verificatiecode"},
		{"NL_nl", "Je verificatiecode"},
		{"en-GB", "Your Mijn Portal verification code is 123456"},
		{"de", "Bestätigungscode"},
		{"fr", "Your Mijn Portal"}, // no French template: English
		{"", "Your Mijn Portal"},
	}
	for _, tt := range tests {
		got := Render(tt.locale, d)
		if !strings.Contains(got, tt.want) || !strings.Contains(got, d.Code) || !strings.Contains(got, d.Link) || !strings.Contains(got, "10") {
			t.Errorf("Render(%q) = %q", tt.locale, got)
		}
		if strings.Contains(got, "—") {
			t.Errorf("Render(%q) uses a non-GSM dash", tt.locale)
		}
	}
	if got := Render("nl", TemplateData{AppName: "x", Code: "1", TTLMinutes: 1}); !strings.Contains(got, "1 minuut") {
		t.Errorf("singular: %q", got)
	}
}
