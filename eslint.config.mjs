// Type-aware lint. Generated protobuf code and build output are excluded.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import importX from "eslint-plugin-import-x";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "proto/src/gen/**", "**/assets/**", ".ferry/**", ".test-env/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      // Plain JS files outside every tsconfig are parsed with a default project; their number is bounded by the globs.
      parserOptions: {
        projectService: { allowDefaultProject: ["*.mjs", "scripts/*.mjs", "*/bin/*.js", "bench/rollout/*.mjs"], maximumDefaultProjectFileMatchCount_THIS_WILL_SLOW_DOWN_LINTING: 16 },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { "import-x": importX },
    settings: {
      // Without TypeScript files among import-x's extensions and a resolver that knows TypeScript's rules (".js"
      // specifiers naming ".ts" files, the workspace packages' "ferry-source" condition), import-x follows no edge
      // and no-cycle passes whatever the graph is.
      "import-x/extensions": [".ts", ".js", ".mjs"],
      "import-x/external-module-folders": ["node_modules", "node_modules/@types"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/resolver-next": [
        createTypeScriptImportResolver({ project: "tsconfig.json", conditionNames: ["ferry-source", "types", "import", "node", "default"] }),
      ],
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false } }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/require-await": "off",
      "@typescript-eslint/only-throw-error": "off",
      "import-x/no-cycle": ["error", { maxDepth: 10, ignoreExternal: true }],
    },
  },
  {
    files: ["**/*.mjs", "**/bin/*.js"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: "readonly", console: "readonly", URL: "readonly", Buffer: "readonly" } },
  },
  {
    // node:test's describe/it return promises the runner awaits itself.
    files: ["**/*.test.ts", "test/**/*.ts", "bench/**/*.ts"],
    rules: { "@typescript-eslint/no-floating-promises": "off" },
  },
);
