/*
 * devopts.h — a device's options from a domain SPEC: the words after the
 * kind in dev=KIND:key=value:key=value (a bare "key" means "key="). Values
 * may not hold ':' or ','. Pure; every error is a sentence naming the
 * device kind, the key and what is accepted.
 */
#ifndef MOAT_DEVOPTS_H
#define MOAT_DEVOPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVOPTS_MAX 256         /* bytes of one device's option string */

/* Every key in opts is one of known (NULL-terminated list)? */
bool devopts_check(const char *kind, const char *opts, const char *const *known,
                   char *err, size_t errlen);
/* Value of key (NUL-terminated, at most len - 1 bytes); false when absent
 * or too long (err says which). A present key with a too-long value is an
 * error, not an absence: check err[0] when false. */
bool devopts_get(const char *opts, const char *key, char *out, size_t len,
                 char *err, size_t errlen);
/* Decimal/0x-hex value with optional K/M/G suffix, in [min, max]; fallback
 * when absent. False (err set) when malformed or out of range. */
bool devopts_u64(const char *kind, const char *opts, const char *key, uint64_t fallback,
                 uint64_t min, uint64_t max, uint64_t *out, char *err, size_t errlen);

/* NIC options. mac=: a unicast MAC as 52-54-00-12-34-56 or 525400123456;
 * *set tells whether it was given (mac untouched when not). link=up|down
 * (fallback when absent). False with err set when malformed. */
bool devopts_mac(const char *kind, const char *opts, uint8_t mac[6], bool *set,
                 char *err, size_t errlen);
bool devopts_link(const char *kind, const char *opts, bool fallback, bool *up,
                  char *err, size_t errlen);
/* A stable locally administered MAC for a port name: 52:54:00 and three
 * bytes of FNV-1a over the name. */
void devopts_default_mac(const char *port, uint8_t mac[6]);

#endif /* MOAT_DEVOPTS_H */
