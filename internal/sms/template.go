package sms

import (
	"slices"
	"strconv"
	"strings"
)

// TemplateData fills a verification SMS.
type TemplateData struct {
	AppName    string
	Code       string
	Link       string // opens the app; omitted from the text when ""
	TTLMinutes int
}

// template is one language. The texts use only GSM 03.38 characters ("-",
// never "—") and stay near 160 characters with a typical link: a single
// non-GSM character would switch the SMS to UCS-2 and cut a segment to 70
// characters, doubling or tripling its price.
type template struct {
	withLink    func(d TemplateData, ttl string) string
	withoutLink func(d TemplateData, ttl string) string
	minutes     func(n int) string
}

// defaultLocale is used for any locale without a template.
const defaultLocale = "en"

var templates = map[string]template{
	"en": {
		withLink: func(d TemplateData, ttl string) string {
			return "Your " + d.AppName + " verification code is " + d.Code + ". Or tap " + d.Link + " - valid for " + ttl + ". Do not share this code."
		},
		withoutLink: func(d TemplateData, ttl string) string {
			return "Your " + d.AppName + " verification code is " + d.Code + ". Valid for " + ttl + ". Do not share this code."
		},
		minutes: plural("minute", "minutes"),
	},
	"nl": {
		withLink: func(d TemplateData, ttl string) string {
			return "Je verificatiecode voor " + d.AppName + " is " + d.Code + ". Of tik op " + d.Link + " - geldig " + ttl + ". Deel deze code met niemand."
		},
		withoutLink: func(d TemplateData, ttl string) string {
			return "Je verificatiecode voor " + d.AppName + " is " + d.Code + ". Geldig " + ttl + ". Deel deze code met niemand."
		},
		minutes: plural("minuut", "minuten"),
	},
	"de": {
		withLink: func(d TemplateData, ttl string) string {
			return "Dein Bestätigungscode für " + d.AppName + " ist " + d.Code + ". Oder tippe auf " + d.Link + " - " + ttl + " gültig. Nicht weitergeben."
		},
		withoutLink: func(d TemplateData, ttl string) string {
			return "Dein Bestätigungscode für " + d.AppName + " ist " + d.Code + ". " + ttl + " gültig. Nicht weitergeben."
		},
		minutes: plural("Minute", "Minuten"),
	},
}

func plural(one, many string) func(int) string {
	return func(n int) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.Itoa(n) + " " + many
	}
}

// Render writes the verification SMS in the language of locale: a BCP 47 tag
// ("nl", "nl-NL", "de_AT", even an Accept-Language list, whose first entry
// counts). Unknown or empty locales get English, so a user is never left
// without a code.
func Render(locale string, d TemplateData) string {
	t := templates[baseLanguage(locale)]
	if t.withLink == nil {
		t = templates[defaultLocale]
	}
	ttl := t.minutes(d.TTLMinutes)
	if strings.TrimSpace(d.Link) == "" {
		return t.withoutLink(d, ttl)
	}
	return t.withLink(d, ttl)
}

// baseLanguage reduces a locale to its lower-case primary language subtag.
func baseLanguage(locale string) string {
	l := strings.TrimSpace(locale)
	if i := strings.IndexAny(l, ",;"); i >= 0 {
		l = l[:i]
	}
	if i := strings.IndexAny(l, "-_"); i >= 0 {
		l = l[:i]
	}
	return strings.ToLower(strings.TrimSpace(l))
}

// Locales lists the languages Render has texts for, sorted.
func Locales() []string {
	ls := make([]string, 0, len(templates))
	for l := range templates {
		ls = append(ls, l)
	}
	slices.Sort(ls)
	return ls
}
