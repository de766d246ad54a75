/**
 * Imported first by every entry point (the `callfs` bin, the library, the
 * client): on an older Node, undici 8 crashes while loading with "Cannot read
 * properties of undefined (reading 'bind')", which tells a user nothing. ES
 * modules are evaluated in import order, so this check runs before undici is
 * loaded. Kept free of imports on purpose.
 */
export const MIN_NODE = [22, 19] as const;

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
  throw new Error(
    `CallFS needs Node.js >= ${MIN_NODE.join('.')} (this is ${process.version} at ${process.execPath}). ` +
      'Install Node 24 LTS, or run it through `npm start` / `npx callfs` inside the repository, which use the bundled Node 24.',
  );
}
