// {{name}}: adds the response header "hello: world!", or "hello: <configuration>" when the filter
// is given a configuration string (the add-header filter of the wasme tutorial).
#include <string>
#include <string_view>

#include "config.h"
#include "proxy_wasm_intrinsics.h"

class AddHeaderRootContext : public RootContext {
 public:
  explicit AddHeaderRootContext(uint32_t id, std::string_view root_id) : RootContext(id, root_id) {}

  bool onConfigure(size_t configuration_size) override {
    auto data = getBufferBytes(WasmBufferType::PluginConfiguration, 0, configuration_size);
    // A plain string (EnvoyFilter mode) or JSON such as {"value":"goodbye"} (WasmPlugin mode).
    value_ = greetingFrom(data->view());
    if (value_.empty()) value_ = "world!";
    return true;
  }

  const std::string& value() const { return value_; }

 private:
  std::string value_ = "world!";
};

class AddHeaderContext : public Context {
 public:
  explicit AddHeaderContext(uint32_t id, RootContext* root) : Context(id, root) {}

  FilterHeadersStatus onResponseHeaders(uint32_t, bool) override {
    auto* root = static_cast<AddHeaderRootContext*>(this->root());
    addResponseHeader("hello", root->value());
    return FilterHeadersStatus::Continue;
  }
};

static RegisterContextFactory register_AddHeaderContext(CONTEXT_FACTORY(AddHeaderContext),
                                                       ROOT_FACTORY(AddHeaderRootContext),
                                                       "{{rootId}}");
