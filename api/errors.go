package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/gin-gonic/gin"
)

// ---- errors ----

type errorBody struct {
	Type        string `json:"type"`
	Code        string `json:"code"`
	Message     string `json:"message"`
	Param       string `json:"param,omitempty"`
	DeclineCode string `json:"decline_code,omitempty"`
}

func apiError(c *gin.Context, status int, typ, code, msg, param string) {
	c.AbortWithStatusJSON(status, gin.H{"error": errorBody{Type: typ, Code: code, Message: msg, Param: param}})
}

func badRequest(c *gin.Context, code, msg, param string) {
	apiError(c, http.StatusBadRequest, "invalid_request_error", code, msg, param)
}

func notFound(c *gin.Context, what string) {
	apiError(c, http.StatusNotFound, "invalid_request_error", "resource_missing", "no such "+what, "")
}

// internal logs the cause and tells the client nothing of it.
func (h *handlers) internal(c *gin.Context, op string, err error) {
	h.Logger.Error(op, "request_id", c.GetString(ctxRequestID), "error", err.Error())
	apiError(c, http.StatusInternalServerError, "api_error", "internal_error", "internal error; try again", "")
}

func (h *handlers) unavailable(c *gin.Context, op string, err error) {
	h.Logger.Error(op, "request_id", c.GetString(ctxRequestID), "error", err.Error())
	apiError(c, http.StatusServiceUnavailable, "api_error", "service_unavailable", "the billing service is busy; try again", "")
}

// readBody reads the whole body, at most maxBody bytes: more is a 413, a
// broken connection a 400.
func readBody(c *gin.Context) ([]byte, bool) {
	if c.Request.Body == nil {
		return nil, true
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		apiError(c, http.StatusRequestEntityTooLarge, "invalid_request_error", "body_too_large", "request body is larger than 1 MiB", "")
		return nil, false
	case err != nil:
		badRequest(c, "invalid_request", "the request body could not be read", "")
		return nil, false
	}
	return body, true
}

// bindJSON decodes a bounded body strictly: unknown fields and trailing data
// are errors that name the problem.
func bindJSON(c *gin.Context, dst any) bool {
	body, ok := readBody(c)
	if !ok {
		return false
	}
	return decodeJSON(c, body, dst)
}

// bindOptionalJSON is bindJSON for routes whose body may be left out: an
// empty body leaves dst as it is; anything else is decoded as strictly. It
// reads the body rather than trust Content-Length, which a chunked request
// does not send.
func bindOptionalJSON(c *gin.Context, dst any) bool {
	body, ok := readBody(c)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	return decodeJSON(c, body, dst)
}

func decodeJSON(c *gin.Context, body []byte, dst any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		msg, param := describeJSONError(err)
		badRequest(c, "invalid_json", msg, param)
		return false
	}
	if dec.More() {
		badRequest(c, "invalid_json", "request body has data after the JSON object", "")
		return false
	}
	if field, bad := nulField(reflect.ValueOf(dst), ""); bad {
		badRequest(c, "parameter_invalid", "text must not contain NUL (\\u0000) characters", field)
		return false
	}
	return true
}

// nulField finds a string in v holding a NUL, which Postgres cannot store:
// refused here, before anything is charged or written. It names the field
// as the JSON does.
func nulField(v reflect.Value, path string) (string, bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "", false
		}
		return nulField(v.Elem(), path)
	case reflect.String:
		return path, strings.ContainsRune(v.String(), 0)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if !t.Field(i).IsExported() {
				continue
			}
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name == "" {
				name = t.Field(i).Name
			}
			if name == "-" {
				continue
			}
			if path != "" {
				name = path + "." + name
			}
			if f, bad := nulField(v.Field(i), name); bad {
				return f, true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if f, bad := nulField(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); bad {
				return f, true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			k := fmt.Sprint(it.Key().Interface())
			if strings.ContainsRune(k, 0) {
				return path, true
			}
			if f, bad := nulField(it.Value(), path+"."+k); bad {
				return f, true
			}
		}
	}
	return "", false
}

func describeJSONError(err error) (string, string) {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset), ""
	case errors.As(err, &typ):
		return fmt.Sprintf("%s must be %s", typ.Field, jsonKind(typ.Type.Kind().String())), typ.Field
	case errors.Is(err, io.EOF):
		return "request body is empty; send a JSON object", ""
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fmt.Sprintf("unknown field %q", f), f
	}
	return "malformed JSON: " + err.Error(), ""
}

func jsonKind(k string) string {
	switch k {
	case "int64", "int", "int32":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return "a " + k
}
