// esbuild --inject for the CommonJS bundle (package.json `build`): what
// `import.meta.url` means in the sources, the bundle file's own URL.
export const import_meta_url = require('node:url').pathToFileURL(__filename).href;
