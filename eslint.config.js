// Lint config: typescript-eslint's recommended rules plus the layer rules of ARCHITECTURE.md.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'man/**', 'helper/build/**', '.cache/**'] },
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
