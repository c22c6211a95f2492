/*
 * A stand-in for the part of Criterion's API the KVM suites use, so the
 * same suites build and run under ThreadSanitizer: Criterion itself
 * cannot start under TSan (its inheritable arena fails to map, an open
 * upstream bug, Snaipe/Criterion#274). harness/tsan/shim/runner.c runs
 * each test in its own child process, writes a TAP report (--tap=FILE)
 * and prints a synthesis line like Criterion's.
 *
 * Only for the TSan builds (make test-tsan); every other build uses the
 * real Criterion.
 */
#ifndef TSAN_CRITERION_SHIM_H
#define TSAN_CRITERION_SHIM_H

/* What Criterion's header brings in too, so the suites build unchanged. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tshim_test {
    const char *suite, *name;
    void (*fn)(void);
    void (*init)(void);
    void (*fini)(void);
    double timeout;
    const char *description;    /* accepted, unused */
    bool disabled;
    struct tshim_test *next;
};
struct tshim_suite {
    const char *name;
    void (*init)(void);
    void (*fini)(void);
    double timeout;
    struct tshim_suite *next;
};

void tshim_register(struct tshim_test *t);
void tshim_register_suite(struct tshim_suite *s);
_Noreturn void tshim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
_Noreturn void tshim_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define Test(S_, N_, ...)                                                                 \
    static void S_##_##N_##_impl(void);                                                   \
    static struct tshim_test tshim_##S_##_##N_ = {                                        \
        .suite = #S_, .name = #N_, .fn = S_##_##N_##_impl, __VA_ARGS__ };                 \
    __attribute__((constructor)) static void tshim_reg_##S_##_##N_(void)                  \
    {                                                                                     \
        tshim_register(&tshim_##S_##_##N_);                                               \
    }                                                                                     \
    static void S_##_##N_##_impl(void)

/* Suite-wide init, fini and timeout: a test's own take precedence. */
#define TestSuite(S_, ...)                                                                \
    static struct tshim_suite tshim_suite_##S_ = { .name = #S_, __VA_ARGS__ };            \
    __attribute__((constructor)) static void tshim_reg_suite_##S_(void)                   \
    {                                                                                     \
        tshim_register_suite(&tshim_suite_##S_);                                          \
    }

/* " " keeps the format non-empty when a call gives no message. */
#define TSHIM_CHECK(cond, text, ...)                                                      \
    do {                                                                                  \
        if (!(cond))                                                                      \
            tshim_fail(__FILE__, __LINE__, text, " " __VA_ARGS__);                         \
    } while (0)

#define cr_assert(e, ...)            TSHIM_CHECK((e), #e, __VA_ARGS__)
#define cr_assert_not(e, ...)        TSHIM_CHECK(!(e), "!(" #e ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...)      TSHIM_CHECK((a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...)     TSHIM_CHECK((a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...)      TSHIM_CHECK((a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...)     TSHIM_CHECK((a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...)      TSHIM_CHECK((a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...)     TSHIM_CHECK((a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...)       TSHIM_CHECK((p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...)   TSHIM_CHECK((p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)  TSHIM_CHECK(!strcmp((a), (b)), #a " eq " #b, __VA_ARGS__)
#define cr_assert_str_empty(a, ...)  TSHIM_CHECK(!*(a), #a " is empty", __VA_ARGS__)
#define cr_skip_test(...)            tshim_skip(" " __VA_ARGS__)
#define cr_log_info(...)             (fprintf(stderr, " " __VA_ARGS__), fputc('\n', stderr))

#endif /* TSAN_CRITERION_SHIM_H */
