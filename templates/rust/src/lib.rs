// {{name}}: adds the response header "hello: world!", or "hello: <configuration>" when the filter
// is given a configuration string (the add-header filter of the wasme tutorial).
mod config;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(AddHeaderRoot { value: String::new() }) });
}}

struct AddHeaderRoot {
    value: String,
}

impl Context for AddHeaderRoot {}

impl RootContext for AddHeaderRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        // A plain string (EnvoyFilter mode) or JSON such as {"value":"goodbye"} (WasmPlugin mode).
        let text = self
            .get_plugin_configuration()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_default();
        self.value = config::greeting_from(&text);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let value = if self.value.is_empty() { "world!".to_string() } else { self.value.clone() };
        Some(Box::new(AddHeader { value }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct AddHeader {
    value: String,
}

impl Context for AddHeader {}

impl HttpContext for AddHeader {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.add_http_response_header("hello", &self.value);
        Action::Continue
    }
}
