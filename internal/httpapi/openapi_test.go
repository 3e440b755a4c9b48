package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/proto/openapi"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// /openapi.json is served, and every RPC of every service has an HTTP rule
// that the document lists under the same path and method. (That the
// document is the one buf generates from the protos is checked by
// scripts/test.sh, which regenerates it and fails on any difference.)
func TestOpenAPI(t *testing.T) {
	ts := servertest.New(t, servertest.Backends[0].NewURL(t))
	resp, err := http.Get(ts.HTTPURL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(buf.Bytes(), openapi.JSON) {
		t.Fatalf("GET /openapi.json = %d %q, %d bytes (want the embedded document)", resp.StatusCode, resp.Header.Get("Content-Type"), buf.Len())
	}
	var doc struct {
		Paths       map[string]map[string]json.RawMessage `json:"paths"`
		SecurityDef map[string]struct {
			In   string `json:"in"`
			Name string `json:"name"`
		} `json:"securityDefinitions"`
		Definitions map[string]json.RawMessage `json:"definitions"`
	}
	if err := json.Unmarshal(openapi.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	if b := doc.SecurityDef["bearer"]; b.In != "header" || b.Name != "Authorization" {
		t.Errorf("security definition = %+v, want the Authorization header", b)
	}
	if _, ok := doc.Definitions["rpcStatus"]; !ok {
		t.Error("the error shape (rpcStatus) is not defined")
	}
	camel := regexp.MustCompile(`_([a-z])`)
	for _, sd := range []protoreflect.ServiceDescriptor{
		pushauthv1.File_pushauth_v1_relying_party_proto.Services().ByName("RelyingPartyService"),
		pushauthv1.File_pushauth_v1_admin_proto.Services().ByName("AdminService"),
		pushauthv1.File_pushauth_v1_device_proto.Services().ByName("DeviceService"),
	} {
		for i := range sd.Methods().Len() {
			m := sd.Methods().Get(i)
			rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
			if rule == nil || rule.GetPattern() == nil {
				t.Errorf("%s has no google.api.http rule: JSON clients cannot call it", m.FullName())
				continue
			}
			method, path := "", ""
			switch p := rule.GetPattern().(type) {
			case *annotations.HttpRule_Get:
				method, path = "get", p.Get
			case *annotations.HttpRule_Post:
				method, path = "post", p.Post
			case *annotations.HttpRule_Put:
				method, path = "put", p.Put
			case *annotations.HttpRule_Delete:
				method, path = "delete", p.Delete
			case *annotations.HttpRule_Patch:
				method, path = "patch", p.Patch
			}
			path = camel.ReplaceAllStringFunc(path, func(s string) string { return strings.ToUpper(s[1:]) })
			if _, ok := doc.Paths[path][method]; !ok {
				t.Errorf("%s: %s %s is not in /openapi.json", m.FullName(), strings.ToUpper(method), path)
			}
		}
	}
}
