import {
  LANGUAGES,
  PLATFORMS,
  TEMPLATES,
  defaultPlatformVersion,
  nameFromFolder,
  validateFilterName,
  validateRootId,
  type AssemblyScriptSdk,
  type ScaffoldChoices,
  type Language,
  type PlatformName,
} from '../core';

type InitFlags = Partial<ScaffoldChoices> & { dir: string };

/** wasme asked in the terminal for what the flags left open; so does this, with the same order. */
export async function askInitQuestions(flags: InitFlags) {
  // Loaded on demand: the prompt library costs ~70 ms to load, which commands that ask nothing should not pay.
  const { input, select } = await import('@inquirer/prompts');
  const language =
    flags.language ??
    (await select<Language>({
      message: 'Language',
      choices: LANGUAGES.map((l) => ({ value: l, name: l, description: TEMPLATES.find((t) => t.language === l)!.title })),
    }));
  const platform =
    flags.platform ??
    (await select<PlatformName>({
      message: 'Platform',
      choices: (Object.keys(PLATFORMS) as PlatformName[]).map((p) => ({ value: p, name: p })),
    }));
  const platformVersion =
    flags.platformVersion ??
    (await select<string>({
      message: `${platform} version`,
      default: defaultPlatformVersion(platform),
      choices: PLATFORMS[platform].map((v) => ({ value: v.version, name: v.note ? `${v.version} (${v.note})` : v.version })),
    }));
  const sdk =
    language !== 'assemblyscript'
      ? undefined
      : (flags.sdk ??
        (await select<AssemblyScriptSdk>({
          message: 'AssemblyScript SDK',
          choices: TEMPLATES.filter((t) => t.language === 'assemblyscript').map((t) => ({ value: t.sdk!, name: `${t.sdk}: ${t.title}` })),
        })));
  const name = flags.name ?? (await input({ message: 'Filter name', default: nameFromFolder(flags.dir), validate: (v) => validateFilterName(v) ?? true }));
  const rootId = flags.rootId ?? (await input({ message: 'Root id', default: 'add_header', validate: (v) => validateRootId(v) ?? true }));
  return { language, platform, platformVersion, ...(sdk ? { sdk } : {}), name, rootId };
}
