/* Helpers shared by the test suites. */
#ifndef TS_TESTS_SUPPORT_H
#define TS_TESTS_SUPPORT_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* A fresh empty directory under the build tree's tests/tmp, unique per
 * call (name prefix + pid + counter).  Returns a static-lifetime string the
 * caller frees with free(). */
char *tst_tmpdir(const char *prefix);
/* rm -rf dir (ignores errors). */
void tst_rmrf(const char *dir);
/* Copy everything in directory from into directory to (cp -a); fails the test on error. */
void tst_copy_dir(const char *from, const char *to);
/* A step of xorshift64 on *state (not 0): a reproducible stream for
 * randomized tests (53 random bits). */
uint64_t tst_rand(uint64_t *state);
/* Run a suite; returns the process exit status (0 when all passed). */
int tst_run(Suite *s);

#endif
