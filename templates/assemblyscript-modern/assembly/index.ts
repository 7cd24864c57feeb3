// {{name}}: adds the response header "hello: world!", or "hello: <configuration>" when the filter
// is given a configuration string (the add-header filter of the wasme tutorial).
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  stream_context,
} from "@gcoredev/proxy-wasm-sdk-as/assembly";

// The configuration arrives as a plain string from wasme's EnvoyFilter (a StringValue) and as JSON from
// Istio's WasmPlugin (pluginConfig, e.g. {"value":"tanjunchen20"}): read both the same way.
function greetingFrom(text: string): string {
  // (charCodeAt rather than trim/startsWith: assemblyscript 0.14's runtime mishandles those here.)
  if (text.length == 0 || text.charCodeAt(0) != 123) return text;
  const key = text.indexOf("\"value\"");
  if (key < 0) return "";
  const colon = text.indexOf(":", key);
  const open = text.indexOf("\"", colon + 1);
  const close = text.indexOf("\"", open + 1);
  if (colon < 0 || open <= colon || close <= open) return "";
  const value = text.substring(open + 1, close);
  return value;
}

class AddHeaderRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new AddHeader(context_id, this);
  }
}

class AddHeader extends Context {
  constructor(context_id: u32, root_context: AddHeaderRoot) {
    super(context_id, root_context);
  }

  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const greeting = greetingFrom(this.root_context.getConfiguration());
    // An if, not a ?: — assemblyscript 0.14 releases a ?: result it did not retain, freeing the string.
    let value = greeting;
    if (value == "") value = "world!";
    stream_context.headers.response.add("hello", value);
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => {
  return new AddHeaderRoot(context_id);
}, "{{rootId}}");
