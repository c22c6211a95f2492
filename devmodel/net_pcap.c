/* pcap capture files (contract in net_pcap.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "log.h"
#include "net_pcap.h"

struct net_pcap {
    pthread_mutex_t lock;
    FILE *f;
    bool logged;                /* the first write error was logged */
    char path[256];
    char label[64];
};

/* Global header (pcap-savefile(5)), fields in host byte order: readers
 * recognise the byte order from the magic. */
struct pcap_file_header {
    uint32_t magic;
    uint16_t version_major, version_minor;
    int32_t thiszone;
    uint32_t sigfigs;
    uint32_t snaplen;
    uint32_t linktype;
};
_Static_assert(sizeof(struct pcap_file_header) == NET_PCAP_HEADER_LEN, "pcap header is 24 bytes");

struct pcap_record_header {
    uint32_t ts_sec, ts_usec;
    uint32_t incl_len, orig_len;
};
_Static_assert(sizeof(struct pcap_record_header) == NET_PCAP_RECORD_LEN, "pcap record is 16 bytes");

struct net_pcap *net_pcap_open(const char *path, const char *label, char *err, size_t errlen)
{
    if (strlen(path) >= sizeof((struct net_pcap *)0)->path) {
        snprintf(err, errlen, "pcap file name '%s' is too long", path);
        return NULL;
    }
    struct net_pcap *pc = calloc(1, sizeof *pc);
    if (!pc) {
        snprintf(err, errlen, "pcap %s: out of memory", path);
        return NULL;
    }
    pc->f = fopen(path, "wb");
    if (!pc->f) {
        snprintf(err, errlen, "cannot create pcap file %s for port %s: %s", path, label,
                 strerror(errno));
        free(pc);
        return NULL;
    }
    snprintf(pc->path, sizeof pc->path, "%s", path);
    snprintf(pc->label, sizeof pc->label, "%s", label);
    pthread_mutex_init(&pc->lock, NULL);
    struct pcap_file_header h = {
        .magic = NET_PCAP_MAGIC,
        .version_major = NET_PCAP_VERSION_MAJOR,
        .version_minor = NET_PCAP_VERSION_MINOR,
        .snaplen = NET_PCAP_SNAPLEN,
        .linktype = NET_PCAP_LINKTYPE_ETHERNET,
    };
    if (fwrite(&h, sizeof h, 1, pc->f) != 1 || fflush(pc->f) != 0) {
        snprintf(err, errlen, "cannot write the header of pcap file %s: %s", path,
                 strerror(errno));
        net_pcap_close(pc);
        return NULL;
    }
    return pc;
}

bool net_pcap_write(struct net_pcap *pc, const void *frame, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t incl = len < NET_PCAP_SNAPLEN ? len : NET_PCAP_SNAPLEN;
    struct pcap_record_header r = {
        .ts_sec = (uint32_t)ts.tv_sec,
        .ts_usec = (uint32_t)(ts.tv_nsec / 1000),
        .incl_len = (uint32_t)incl,
        .orig_len = (uint32_t)len,
    };
    pthread_mutex_lock(&pc->lock);
    errno = 0;
    bool ok = fwrite(&r, sizeof r, 1, pc->f) == 1 && fwrite(frame, 1, incl, pc->f) == incl &&
              fflush(pc->f) == 0;
    if (!ok) {
        int e = errno;
        clearerr(pc->f);
        if (!pc->logged) {
            pc->logged = true;
            log_error("net", "pcap %s (port %s): write failed: %s; further errors are only "
                      "counted (pcap_errors)", pc->path, pc->label, e ? strerror(e) : "short write");
        }
    }
    pthread_mutex_unlock(&pc->lock);
    return ok;
}

void net_pcap_close(struct net_pcap *pc)
{
    if (!pc)
        return;
    if (pc->f)
        fclose(pc->f);
    pthread_mutex_destroy(&pc->lock);
    free(pc);
}

const char *net_pcap_path(const struct net_pcap *pc)
{
    return pc->path;
}
