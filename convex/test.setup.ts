/// <reference types="vite/client" />
// The Convex modules for convex-test, collected by Vite (`_generated` must be among them).
// The pattern is convex-test's own default; modules are imported only when a test calls
// into them, so the test files it also matches are never loaded through it.
export const modules = import.meta.glob("./**/*.*s");
