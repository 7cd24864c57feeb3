// Small proxy-wasm modules in WebAssembly text, written for the host's tests: each exercises one group
// of host functions the way an SDK would, with fixed strings in data segments and a bump allocator.
import { serializePairs } from '../../src/core/host/abi';

/** A data segment holding raw bytes, escaped for WebAssembly text. */
function bytes(b: Uint8Array): string {
  return [...b].map((x) => `\\${x.toString(16).padStart(2, '0')}`).join('');
}

const IMPORTS = `
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $setbuf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $defmetric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $incmetric (param i32 i64) (result i32)))
  (import "env" "proxy_set_shared_data" (func $setshared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $getshared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_register_shared_queue" (func $regq (param i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $enq (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $deq (param i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fdwrite (param i32 i32 i32 i32) (result i32)))`;

const COMMON = `
  (global $heap (mut i32) (i32.const 16384))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))`;

// Fixed strings: offset → text.
const STRINGS: [number, string][] = [
  [100, 'x-added'],
  [120, 'yes'],
  [130, 'server'],
  [140, 'hello'],
  [150, 'world'],
  [160, ':path'],
  [170, 'x-trailer'],
  [180, 't'],
  [300, 'grow refused'],
  [320, 'request\0path'],
  [340, 'x-path'],
  [350, 'requests'],
  [360, 'k'],
  [364, 'v1'],
  [370, 'x-shared'],
  [380, 'x-cas'],
  [386, 'mismatch'],
  [400, 'auth'],
  [410, 'x-auth'],
  [420, ':status'],
  [430, 'x-auth-status'],
  [450, 'q'],
  [454, 'item'],
  [460, 'x-queue'],
  [470, 'from wasi\n'],
];
const CALL_HEADERS = serializePairs([
  [':method', 'GET'],
  [':path', '/check'],
  [':authority', 'auth'],
]);

function data(): string {
  return STRINGS.map(([at, text]) => `(data (i32.const ${at}) "${bytes(Buffer.from(text))}")`).join('\n  ') + `\n  (data (i32.const 600) "${bytes(CALL_HEADERS)}")`;
}

const len = (at: number) => Buffer.byteLength(STRINGS.find(([a]) => a === at)![1]);

/** Header maps of every HTTP type, and bodies (pauses until the end of the request body, then prepends "yes"). */
export function mapsModule(abi = 'proxy_abi_version_0_2_1'): string {
  return `(module ${IMPORTS}
  (memory (export "memory") 2)
  ${data()}
  ${COMMON}
  (func (export "${abi}"))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const ${len(100)}) (i32.const 120) (i32.const ${len(120)})))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $replace (i32.const 2) (i32.const 140) (i32.const ${len(140)}) (i32.const 150) (i32.const ${len(150)})))
    (drop (call $remove (i32.const 2) (i32.const 130) (i32.const ${len(130)})))
    (i32.const 0))
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32)
    (drop (call $add (i32.const 1) (i32.const 170) (i32.const ${len(170)}) (i32.const 180) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32)
    (drop (call $add (i32.const 3) (i32.const 170) (i32.const ${len(170)}) (i32.const 180) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (drop (call $setbuf (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 120) (i32.const ${len(120)})))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (drop (call $setbuf (i32.const 1) (i32.const 0) (local.get $size) (i32.const 150) (i32.const ${len(150)})))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32)
    (drop (call $log (i32.const 2) (i32.const 150) (i32.const ${len(150)})))))`;
}

/**
 * A local reply whose body is the plugin configuration, read the way the ABI version says: ABI 0.1.0 with
 * proxy_get_configuration and 2-argument header callbacks, 0.2.x through proxy_get_buffer_bytes.
 */
export function localReplyModule(abi: '0.1.0' | '0.2.0'): string {
  const v010 = abi === '0.1.0';
  return `(module
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  ${v010 ? '(import "env" "proxy_get_configuration" (func $cfg (param i32 i32) (result i32)))' : '(import "env" "proxy_get_buffer_bytes" (func $buf (param i32 i32 i32 i32 i32) (result i32)))'}
  (memory (export "memory") 1)
  (global $cp (mut i32) (i32.const 0))
  (global $cl (mut i32) (i32.const 0))
  ${COMMON}
  (func (export "proxy_abi_version_${abi.replace(/\./g, '_')}"))
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (drop ${v010 ? '(call $cfg (i32.const 200) (i32.const 204))' : '(call $buf (i32.const 7) (i32.const 0) (local.get $size) (i32.const 200) (i32.const 204))'})
    (global.set $cp (i32.load (i32.const 200)))
    (global.set $cl (i32.load (i32.const 204)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 ${v010 ? '' : 'i32'}) (result i32)
    (drop (call $reply (i32.const 418) (i32.const 0) (i32.const 0) (global.get $cp) (global.get $cl) (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1)))`;
}

/** Properties, metrics, shared data with CAS, shared queues, HTTP callouts and the call-response maps. */
export function featuresModule(): string {
  return `(module ${IMPORTS}
  (memory (export "memory") 2)
  ${data()}
  ${COMMON}
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    ;; request.path → x-path
    (if (i32.eqz (call $prop (i32.const 320) (i32.const ${len(320)}) (i32.const 200) (i32.const 204)))
      (then (drop (call $add (i32.const 0) (i32.const 340) (i32.const ${len(340)}) (i32.load (i32.const 200)) (i32.load (i32.const 204))))))
    ;; a counter, incremented by 5
    (drop (call $defmetric (i32.const 0) (i32.const 350) (i32.const ${len(350)}) (i32.const 208)))
    (drop (call $incmetric (i32.load (i32.const 208)) (i64.const 5)))
    ;; shared data: set, read back into x-shared, then a write with a stale CAS is refused
    (drop (call $setshared (i32.const 360) (i32.const 1) (i32.const 364) (i32.const 2) (i32.const 0)))
    (if (i32.eqz (call $getshared (i32.const 360) (i32.const 1) (i32.const 212) (i32.const 216) (i32.const 220)))
      (then (drop (call $add (i32.const 0) (i32.const 370) (i32.const ${len(370)}) (i32.load (i32.const 212)) (i32.load (i32.const 216))))))
    (if (i32.eq (call $setshared (i32.const 360) (i32.const 1) (i32.const 364) (i32.const 2) (i32.const 99999)) (i32.const 8))
      (then (drop (call $add (i32.const 0) (i32.const 380) (i32.const ${len(380)}) (i32.const 386) (i32.const ${len(386)})))))
    ;; a queue: register, enqueue, dequeue into x-queue
    (drop (call $regq (i32.const 450) (i32.const 1) (i32.const 224)))
    (drop (call $enq (i32.load (i32.const 224)) (i32.const 454) (i32.const ${len(454)})))
    (if (i32.eqz (call $deq (i32.load (i32.const 224)) (i32.const 228) (i32.const 232)))
      (then (drop (call $add (i32.const 0) (i32.const 460) (i32.const ${len(460)}) (i32.load (i32.const 228)) (i32.load (i32.const 232))))))
    ;; WASI output goes to the log
    (i32.store (i32.const 240) (i32.const 470))
    (i32.store (i32.const 244) (i32.const ${len(470)}))
    (drop (call $fdwrite (i32.const 1) (i32.const 240) (i32.const 1) (i32.const 248)))
    ;; an HTTP callout to the "auth" upstream; the request waits for it
    (drop (call $call (i32.const 400) (i32.const ${len(400)}) (i32.const 600) (i32.const ${CALL_HEADERS.length}) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 500) (i32.const 236)))
    (i32.const 1))
  (func (export "proxy_on_http_call_response") (param $ctx i32) (param $token i32) (param $nh i32) (param $bs i32) (param $nt i32)
    (if (i32.eqz (call $buf (i32.const 4) (i32.const 0) (local.get $bs) (i32.const 252) (i32.const 256)))
      (then (drop (call $add (i32.const 0) (i32.const 410) (i32.const ${len(410)}) (i32.load (i32.const 252)) (i32.load (i32.const 256))))))
    (if (i32.eqz (call $get (i32.const 6) (i32.const 420) (i32.const ${len(420)}) (i32.const 260) (i32.const 264)))
      (then (drop (call $add (i32.const 0) (i32.const 430) (i32.const ${len(430)}) (i32.load (i32.const 260)) (i32.load (i32.const 264))))))
    (drop (call $continue (i32.const 0)))))`;
}

/**
 * Misbehaves according to the first letter of the request path: /t traps, /l loops forever, /g grows
 * memory until refused, /o logs from an out-of-bounds pointer, /h passes a huge length, /e calls
 * proc_exit. Anything else adds "x-added: yes".
 */
export function hostileModule(): string {
  return `(module ${IMPORTS}
  (memory (export "memory") 2)
  ${data()}
  ${COMMON}
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32) (local $c i32)
    (drop (call $get (i32.const 0) (i32.const 160) (i32.const 5) (i32.const 200) (i32.const 204)))
    (local.set $c (i32.load8_u offset=1 (i32.load (i32.const 200))))
    (if (i32.eq (local.get $c) (i32.const 116)) (then unreachable))
    (if (i32.eq (local.get $c) (i32.const 108)) (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $c) (i32.const 103))
      (then
        (block $done (loop $more
          (br_if $done (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
          (br $more)))
        (drop (call $log (i32.const 2) (i32.const 300) (i32.const ${len(300)})))))
    (if (i32.eq (local.get $c) (i32.const 111)) (then (drop (call $log (i32.const 2) (i32.const -16) (i32.const 100)))))
    (if (i32.eq (local.get $c) (i32.const 104)) (then (drop (call $add (i32.const 0) (i32.const 100) (i32.const 2147483647) (i32.const 120) (i32.const 3)))))
    (if (i32.eq (local.get $c) (i32.const 101)) (then (call $exit (i32.const 3))))
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const ${len(100)}) (i32.const 120) (i32.const ${len(120)})))
    (i32.const 0)))`;
}
