/*
 * moatctl/ctl_format.h — how moatctl prints what the Control cap returns:
 * aligned human tables, or one JSON document per call.
 *
 * Pure: no libmoat calls, no I/O except writing to the given FILE *, so the
 * Criterion suite drives it with crafted structures on a memstream.
 *
 * Trust: every string comes from the VMM (or the operator) and is treated as
 * hostile. A field is read up to its NUL or its size, whichever comes first.
 * Human output replaces every byte outside printable ASCII with '?', so a
 * name can neither break a column nor send escape sequences to a terminal.
 * JSON output escapes '"', '\\' and control bytes (as \u00XX), passes valid
 * UTF-8 through and turns invalid bytes into \ufffd, so the document always
 * parses. Numbers are printed as decimal integers.
 *
 * JSON shapes (one object per call, one top-level key):
 *   {"caps":[{"name","domain","kind","state","generation","blk"}]}
 *       kind "control"|"block"|"nic"|"kind-N"; state "up"|"down"|"state-N";
 *       blk null unless kind is block, else {"block_size","blocks",
 *       "max_blocks","queues","features":["flush","write_zeroes","discard",
 *       "read_only"]}
 *   {"domains":[{"name","id","state","uptime_ns","heartbeat","incarnation",
 *       "sessions","crash"}]}   crash null, or {"cause","detail"}
 *   {"stats":{"domain","exits_io",...,"restarts"}}
 *   {"audit":[{"seq","source","domain","text"}]}
 *   {"ok":true,"domain","action"[,"fault"]}
 *
 * Every ctl_print_* returns 0, or -1 if out has an error (ferror) afterwards.
 */
#ifndef MOATCTL_CTL_FORMAT_H
#define MOATCTL_CTL_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "moat/control_abi.h"

enum ctl_style {
    CTL_HUMAN,      /* header line and aligned columns */
    CTL_JSON,       /* one JSON document and a newline */
};

/* The caps moat offers (moat_list): NAME DOMAIN KIND STATE GEN DETAIL, where
 * DETAIL of a block cap reads "64.0 MiB, 512 B blocks, flush zeroes discard".
 * n == 0 prints "no caps". */
int ctl_print_caps(FILE *out, enum ctl_style st, const struct moat_cap_desc *caps, size_t n);

/* Domain status (moat_domains): NAME ID STATE UPTIME INC SESSIONS HEARTBEAT
 * CRASH, uptime in seconds with one decimal, CRASH "cause: detail" or "-".
 * n == 0 prints "no domains". */
int ctl_print_domains(FILE *out, enum ctl_style st, const struct moat_domain_status *d,
                      size_t n);

/* One domain's counters (moat_domain_stats): a "domain: NAME" line, then
 * COUNTER VALUE MEANING. */
int ctl_print_stats(FILE *out, enum ctl_style st, const struct moat_domain_stats *s);

/* Audit records (moat_audit), in the order given: SEQ SOURCE DOMAIN TEXT.
 * n == 0 prints "no audit records". When nsum > 0, each domain's trail
 * counts come first (DOMAIN RECORDS DROPPED and one column per kind; in
 * JSON a "summary" array beside "audit"). */
int ctl_print_audit(FILE *out, enum ctl_style st, const struct moat_audit_rec *r, size_t n,
                    const struct moat_audit_sum *sum, size_t nsum);

/* The result of a change: "restart nvme0: ok" or, with fault (may be NULL),
 * "inject kill nvme0: ok"; JSON {"ok":true,"domain":...,"action":...}.
 * domain, action and fault are NUL-terminated. */
int ctl_print_result(FILE *out, enum ctl_style st, const char *action, const char *domain,
                     const char *fault);

/* Copy src (read up to its NUL or srcmax bytes) into dst for display:
 * bytes outside printable ASCII become '?'; truncated to fit dstlen - 1 and
 * always NUL-terminated (dstlen > 0). Returns the length written. */
size_t ctl_sanitize(char *dst, size_t dstlen, const char *src, size_t srcmax);

/* "512 B", "4.0 KiB", "64.0 MiB", ... (binary units, one decimal above
 * bytes) for a size of blocks * block_size bytes, without overflow. */
void ctl_format_size(char *dst, size_t dstlen, uint64_t blocks, uint32_t block_size);

/* Write s (read up to its NUL or max bytes) as a JSON string literal,
 * quotes included. */
void ctl_json_string(FILE *out, const char *s, size_t max);

#endif /* MOATCTL_CTL_FORMAT_H */
