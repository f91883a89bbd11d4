// Lint config: typescript-eslint's recommended rules plus the layer rules of ARCHITECTURE.md.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      'man/**',
      'helper/build/**',
      '.cache/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    // every prompt goes through ui/prompt.ts: Ctrl-C at any of them is exit 130
    files: ['src/**/*.ts'],
    ignores: ['src/ui/prompt.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: '@inquirer/prompts', message: 'Ask through src/ui/prompt.ts.' }],
          patterns: [{ group: ['@inquirer/*'], message: 'Ask through src/ui/prompt.ts.' }],
        },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ImportExpression[source.value=/^@inquirer\\//]',
          message: 'Ask through src/ui/prompt.ts.',
        },
      ],
    },
  },
  {
    // core never imports the UI stack (ARCHITECTURE.md, layer table)
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            '@oclif/*',
            '@inquirer/*',
            'chalk',
            'cli-table3',
            '../../commands/*',
            '../../ui/*',
          ],
        },
      ],
    },
  },
)
