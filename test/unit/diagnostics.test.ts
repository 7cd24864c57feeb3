import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic, parseAscOutput } from '../../src/core/build/diagnostics';

// Output as asc prints it with --noColors (0.28 first, then 0.14's layout with blank lines).
const ASC_028 = `ERROR TS2304: Cannot find name 'undefinedThing'.
    :
 24 │ stream_context.headers.response.add("hello", undefinedThing);
    │                                              ~~~~~~~~~~~~~~
    └─ in assembly/index.ts(24,50)

WARNING AS201: Conversion from type 'usize' to 'u32' will require an explicit cast.
    :
 221 │ return utoa32(this, radix);
     └─ in ~lib/number.ts(221,21)

FAILURE 1 compile error(s)
`;
const ASC_014 = `ERROR TS2322: Type '~lib/string/String' is not assignable to type 'i32'.

     let x: i32 = "text";
                  ~~~~~~
 in assembly/index.ts(7,18)

FAILURE 1 compile error(s)
`;

describe('asc diagnostics', () => {
  it('reads 0.28 output with file, line, column and code', () => {
    const [error, warning, ...rest] = parseAscOutput(ASC_028);
    assert.equal(rest.length, 0);
    assert.deepEqual(
      { ...error, context: error!.context.length },
      { severity: 'error', code: 'TS2304', message: "Cannot find name 'undefinedThing'.", file: 'assembly/index.ts', line: 24, column: 50, context: 2 },
    );
    assert.equal(warning!.severity, 'warning');
    assert.equal(warning!.file, '~lib/number.ts');
  });

  it('reads 0.14 output', () => {
    const [d] = parseAscOutput(ASC_014);
    assert.equal(d!.code, 'TS2322');
    assert.equal(d!.line, 7);
    assert.equal(d!.column, 18);
  });

  it('formats one line per diagnostic for the problem matcher', () => {
    const [d] = parseAscOutput(ASC_028);
    const text = formatDiagnostic(d!, { projectDir: '/p', absolutePaths: true });
    assert.match(text.split('\n')[0]!, /^\/p\/assembly\/index\.ts:24:50 - error TS2304: Cannot find name 'undefinedThing'\.$/);
  });
});
