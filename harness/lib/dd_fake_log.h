/*
 * dd_fake_log.h — dd_log and dd_panic for host tests that compile guest
 * code (GK_HOST_TEST): logs are dropped, a panic fails the test with its
 * message. Defines the functions: include it in exactly one file.
 */
#ifndef MOAT_DD_FAKE_LOG_H
#define MOAT_DD_FAKE_LOG_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void dd_log(const char *fmt, ...) { (void)fmt; }

void dd_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char b[256];
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    cr_assert_fail("dd_panic: %s", b);
    abort();
}

#endif /* MOAT_DD_FAKE_LOG_H */
