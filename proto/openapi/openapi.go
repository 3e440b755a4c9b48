// Package openapi holds the OpenAPI (Swagger 2.0) document that buf
// generates from the protos (buf.gen.yaml), so the server can serve it and
// the drift check covers it like the Go code.
package openapi

import _ "embed"

// JSON is the document for every service, as generated.
//
//go:embed pushauth.swagger.json
var JSON []byte
