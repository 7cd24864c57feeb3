package main

import "strings"

// greetingFrom reads the configuration the same way whichever mode delivered it: a plain string from
// wasme's EnvoyFilter (a StringValue), or JSON from Istio's WasmPlugin (pluginConfig, e.g.
// {"value":"goodbye"}). An empty result means "none given". No encoding/json: TinyGo's reflection
// support makes it large and fragile in a proxy-wasm module.
func greetingFrom(text string) string {
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, "{") {
		return text
	}
	key := strings.Index(text, `"value"`)
	if key < 0 {
		return ""
	}
	rest := strings.TrimLeft(text[key+len(`"value"`):], " \t\r\n")
	if !strings.HasPrefix(rest, ":") {
		return ""
	}
	rest = strings.TrimLeft(rest[1:], " \t\r\n")
	if !strings.HasPrefix(rest, `"`) {
		return ""
	}
	var value strings.Builder
	for i := 1; i < len(rest); i++ {
		switch c := rest[i]; c {
		case '"':
			return value.String()
		case '\\':
			i++
			if i >= len(rest) {
				return ""
			}
			switch rest[i] {
			case 'n':
				value.WriteByte('\n')
			case 't':
				value.WriteByte('\t')
			default:
				value.WriteByte(rest[i])
			}
		default:
			value.WriteByte(c)
		}
	}
	return "" // an unterminated string is no value
}
