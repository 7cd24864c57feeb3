// {{name}}: adds the response header "hello: world!", or "hello: <configuration>" when the filter
// is given a configuration string (the add-header filter of the wasme tutorial).
package main

import (
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {
	proxywasm.SetVMContext(&vmContext{})
}

type vmContext struct {
	types.DefaultVMContext
}

func (*vmContext) NewPluginContext(contextID uint32) types.PluginContext {
	return &pluginContext{value: "world!"}
}

type pluginContext struct {
	types.DefaultPluginContext
	value string
}

func (p *pluginContext) OnPluginStart(pluginConfigurationSize int) types.OnPluginStartStatus {
	data, err := proxywasm.GetPluginConfiguration()
	// A plain string (EnvoyFilter mode) or JSON such as {"value":"goodbye"} (WasmPlugin mode).
	if err == nil {
		if greeting := greetingFrom(string(data)); greeting != "" {
			p.value = greeting
		}
	}
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) NewHttpContext(contextID uint32) types.HttpContext {
	return &addHeader{value: p.value}
}

type addHeader struct {
	types.DefaultHttpContext
	value string
}

func (h *addHeader) OnHttpResponseHeaders(numHeaders int, endOfStream bool) types.Action {
	if err := proxywasm.AddHttpResponseHeader("hello", h.value); err != nil {
		proxywasm.LogCriticalf("failed to add the response header: %v", err)
	}
	return types.ActionContinue
}
