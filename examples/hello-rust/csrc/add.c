/* Compiled for the target by build.rs through the `cc` crate. */
int xbuild_add(int a, int b) { return a + b; }
