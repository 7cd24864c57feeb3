// {{name}}: adds the response header "hello: world!", or "hello: <configuration>" when the filter
// is given a configuration string (the add-header filter of the wasme tutorial).
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  stream_context,
} from "@solo-io/proxy-runtime";
import { get_buffer_bytes, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";

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
  configuration: string = "";

  // proxy-runtime 0.1.8's own onConfigure passes the configuration size where the length pointer
  // belongs, so an empty configuration reads stale memory. Read it here the correct way.
  onConfigure(configuration_size: u32): bool {
    this.configuration =
      configuration_size == 0
        ? ""
        : String.UTF8.decode(get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, configuration_size));
    return true;
  }

  createContext(context_id: u32): Context {
    return new AddHeader(context_id, this);
  }
}

class AddHeader extends Context {
  constructor(context_id: u32, root_context: AddHeaderRoot) {
    super(context_id, root_context);
  }

  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const greeting = greetingFrom(changetype<AddHeaderRoot>(this.root_context).configuration);
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
