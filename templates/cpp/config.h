// The configuration arrives as a plain string from wasme's EnvoyFilter (a StringValue) and as JSON from
// Istio's WasmPlugin (pluginConfig, e.g. {"value":"goodbye"}): both are read the same way here. No JSON
// library: the SDK has none, and this keeps the module small.
#pragma once

#include <string>
#include <string_view>

// The greeting a configuration asks for: the text itself, or a JSON object's "value" string.
// An empty result means "none given" (the filter then says "world!").
inline std::string greetingFrom(std::string_view text) {
  const auto space = " \t\r\n";
  auto first = text.find_first_not_of(space);
  if (first == std::string_view::npos) return "";
  text = text.substr(first, text.find_last_not_of(space) - first + 1);
  if (text.front() != '{') return std::string(text);
  auto key = text.find("\"value\"");
  if (key == std::string_view::npos) return "";
  auto rest = text.substr(key + 7);
  auto colon = rest.find_first_not_of(space);
  if (colon == std::string_view::npos || rest[colon] != ':') return "";
  rest = rest.substr(colon + 1);
  auto quote = rest.find_first_not_of(space);
  if (quote == std::string_view::npos || rest[quote] != '"') return "";
  std::string value;
  for (size_t i = quote + 1; i < rest.size(); i++) {
    char c = rest[i];
    if (c == '"') return value;
    if (c == '\\') {
      if (++i >= rest.size()) return "";
      char e = rest[i];
      value.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
    } else {
      value.push_back(c);
    }
  }
  return "";  // an unterminated string is no value
}
