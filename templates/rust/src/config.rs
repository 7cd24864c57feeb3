// The configuration arrives as a plain string from wasme's EnvoyFilter (a StringValue) and as JSON from
// Istio's WasmPlugin (pluginConfig, e.g. {"value":"goodbye"}): both are read the same way here, so a filter
// tested with `wasm-filter test` behaves the same in either mode. No JSON crate: this keeps the module small.

/// The greeting a configuration asks for: the text itself, or a JSON object's "value" string.
/// An empty result means "none given" (the filter then says "world!").
pub fn greeting_from(text: &str) -> String {
    let text = text.trim();
    if !text.starts_with('{') {
        return text.to_string();
    }
    let key = match text.find("\"value\"") {
        Some(i) => i + "\"value\"".len(),
        None => return String::new(),
    };
    let rest = text[key..].trim_start();
    let rest = match rest.strip_prefix(':') {
        Some(r) => r.trim_start(),
        None => return String::new(),
    };
    let mut chars = match rest.strip_prefix('"') {
        Some(r) => r.chars(),
        None => return String::new(),
    };
    let mut value = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return value,
            '\\' => match chars.next() {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some(other) => value.push(other),
                None => break,
            },
            c => value.push(c),
        }
    }
    String::new() // an unterminated string is no value
}

#[cfg(test)]
mod tests {
    use super::greeting_from;

    #[test]
    fn reads_plain_and_json_the_same_way() {
        assert_eq!(greeting_from("world"), "world");
        assert_eq!(greeting_from("{\"value\": \"goodbye\"}"), "goodbye");
        assert_eq!(greeting_from("{\"other\": 1}"), "");
        assert_eq!(greeting_from(""), "");
    }
}
