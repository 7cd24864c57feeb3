import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { scaffoldProject } from '../../src/core/scaffold/scaffold';
import { tempDir } from '../helpers/env';

/**
 * The Rust, TinyGo and C++ templates read their configuration in a dependency-free file (config.rs,
 * config.go, config.h). No wasm toolchain for them runs here, but their compilers for this machine do:
 * each template's own parser is compiled natively and fed the configurations both deploy modes deliver.
 */
const CASES: [string, string][] = [
  ['', ''],
  ['world', 'world'], // EnvoyFilter mode: a StringValue
  ['{"value":"goodbye"}', 'goodbye'], // WasmPlugin mode: pluginConfig as JSON
  ['{ "other": 1, "value" : "tanjunchen20" }', 'tanjunchen20'],
  ['{"value":"say \\"hi\\""}', 'say "hi"'],
  ['{"other":"x"}', ''], // no value: the filter's default
  ['{"value":"unterminated', ''],
];

function has(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    try {
      execFileSync(command, ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  }
}

async function scaffolded(language: 'rust' | 'tinygo' | 'cpp'): Promise<string> {
  const dir = path.join(tempDir('wfs-tpl-'), language);
  await scaffoldProject({ dir, language, platform: 'istio', platformVersion: '1.28.x', rootId: 'add_header', name: `cfg-${language}`, install: false });
  return dir;
}

/** Runs a native driver that prints greetingFrom(arg) for each case, one JSON string per line. */
function answers(binary: string[], cwd: string): string[] {
  const out = execFileSync(binary[0]!, [...binary.slice(1), ...CASES.map(([c]) => c)], { cwd, encoding: 'utf8' });
  return out.trimEnd().split('\n').map((l) => JSON.parse(l) as string);
}

describe('templates read a plain or a JSON configuration alike', () => {
  it('rust: src/config.rs', { skip: !has('rustc') && 'rustc is not installed' }, async () => {
    const dir = await scaffolded('rust');
    assert.match(await fs.readFile(path.join(dir, 'src', 'lib.rs'), 'utf8'), /config::greeting_from\(&text\)/, 'the filter uses it');
    const driver = path.join(dir, 'driver.rs');
    await fs.writeFile(driver, `#[path = "src/config.rs"] mod config;\nfn main() { for a in std::env::args().skip(1) { println!("{:?}", config::greeting_from(&a)); } }\n`);
    execFileSync('rustc', ['--edition', '2021', '-o', path.join(dir, 'driver'), driver], { cwd: dir });
    assert.deepEqual(answers([path.join(dir, 'driver')], dir), CASES.map(([, want]) => want));
    // The module's own unit tests pass too.
    execFileSync('rustc', ['--edition', '2021', '--test', '-o', path.join(dir, 'config-tests'), path.join(dir, 'src', 'config.rs')], { cwd: dir });
    execFileSync(path.join(dir, 'config-tests'), { cwd: dir, stdio: 'ignore' });
  });

  it('tinygo: config.go', { skip: !has('go') && 'go is not installed' }, async () => {
    const dir = await scaffolded('tinygo');
    assert.match(await fs.readFile(path.join(dir, 'main.go'), 'utf8'), /greetingFrom\(string\(data\)\)/, 'the filter uses it');
    // main.go needs the SDK (not here); the parser has no dependency, so it builds alone.
    const driverDir = path.join(dir, 'driver');
    await fs.mkdir(driverDir);
    await fs.copyFile(path.join(dir, 'config.go'), path.join(driverDir, 'config.go'));
    await fs.writeFile(path.join(driverDir, 'go.mod'), 'module driver\n\ngo 1.19\n');
    await fs.writeFile(path.join(driverDir, 'main.go'), 'package main\n\nimport (\n\t"encoding/json"\n\t"fmt"\n\t"os"\n)\n\nfunc main() {\n\tfor _, a := range os.Args[1:] {\n\t\tb, _ := json.Marshal(greetingFrom(a))\n\t\tfmt.Println(string(b))\n\t}\n}\n');
    execFileSync('go', ['build', '-o', 'driver', '.'], { cwd: driverDir, env: { ...process.env, GOPROXY: 'off', GOCACHE: path.join(dir, '.gocache'), GOPATH: path.join(dir, '.gopath') } });
    assert.deepEqual(answers([path.join(driverDir, 'driver')], driverDir), CASES.map(([, want]) => want));
  });

  it('cpp: config.h', { skip: !has('g++') && 'g++ is not installed' }, async () => {
    const dir = await scaffolded('cpp');
    assert.match(await fs.readFile(path.join(dir, 'filter.cc'), 'utf8'), /greetingFrom\(data->view\(\)\)/, 'the filter uses it');
    const driver = path.join(dir, 'driver.cc');
    // Prints each answer as a JSON string (escaping what the cases contain: quotes and backslashes).
    await fs.writeFile(driver, '#include <iostream>\n#include "config.h"\nint main(int argc, char** argv) {\n  for (int i = 1; i < argc; i++) {\n    std::string v = greetingFrom(argv[i]), out = "\\"";\n    for (char c : v) { if (c == \'"\' || c == \'\\\\\') out += \'\\\\\'; out += c; }\n    std::cout << out << "\\"\\n";\n  }\n}\n');
    execFileSync('g++', ['-std=c++17', '-Wall', '-Werror', '-o', path.join(dir, 'driver'), driver], { cwd: dir });
    assert.deepEqual(answers([path.join(dir, 'driver')], dir), CASES.map(([, want]) => want));
  });
});
