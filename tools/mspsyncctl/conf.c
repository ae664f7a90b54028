/*
 * conf.c — where mspsyncctl finds the API: the config file and secret files.
 *
 * The precedence (flags > environment > config file) is applied by main.c; this module only
 * reads files. A config file is `key = value` lines so that it can be written by hand and by
 * `printf >>`; an unknown key is an error (a typo such as `tokn` must not silently fall back to
 * no token). A file holding a token is refused when group or others may read it, as ssh refuses
 * such a private key: a token others can read is already exposed, and saying so early is
 * better than using it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

#define CTL_FILE_MAX (1 << 20) /* a config or secret file is small; refuse anything larger */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static char *field_of(ctl_conf *conf, const char *key, size_t klen) {
    static const struct {
        const char *name;
        size_t off;
    } keys[] = {
        {"url", offsetof(ctl_conf, url)},
        {"token", offsetof(ctl_conf, token)},
        {"token_file", offsetof(ctl_conf, token_file)},
        {"tenant", offsetof(ctl_conf, tenant)},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strlen(keys[i].name) == klen && memcmp(keys[i].name, key, klen) == 0)
            return (char *)conf + keys[i].off;
    return NULL;
}

int ctl_conf_parse(const char *text, size_t len, ctl_conf *conf, char *err, size_t err_size) {
    if (memchr(text, '\0', len)) {
        snprintf(err, err_size, "the file holds a NUL byte (not a text file)");
        return -1;
    }
    size_t pos = 0;
    for (int lineno = 1; pos < len; lineno++) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        while (n > 0 && is_space(line[0]))
            line++, n--;
        while (n > 0 && is_space(line[n - 1]))
            n--;
        if (n == 0 || line[0] == '#')
            continue;
        const char *eq = memchr(line, '=', n);
        if (!eq) {
            snprintf(err, err_size, "line %d: expected `key = value`", lineno);
            return -1;
        }
        size_t klen = (size_t)(eq - line);
        while (klen > 0 && is_space(line[klen - 1]))
            klen--;
        const char *val = eq + 1;
        size_t vlen = n - (size_t)(val - line);
        while (vlen > 0 && is_space(val[0]))
            val++, vlen--;
        if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"')
            val++, vlen -= 2;
        char *dst = field_of(conf, line, klen);
        if (!dst) {
            snprintf(err, err_size,
                     "line %d: unknown key \"%.*s\" (known: url, token, token_file, tenant)",
                     lineno, (int)(klen > 64 ? 64 : klen), line);
            return -1;
        }
        if (vlen >= CTL_CONF_VALUE_MAX) {
            snprintf(err, err_size, "line %d: the value of %.*s is longer than %d bytes", lineno,
                     (int)klen, line, CTL_CONF_VALUE_MAX - 1);
            return -1;
        }
        memcpy(dst, val, vlen);
        dst[vlen] = '\0';
    }
    return 0;
}

/* Reads a whole small file; "-" is stdin. @returns new buffer (NUL-terminated) or NULL with err.
 * With mode_out, the file's mode (0 for stdin). */
static char *slurp(const char *path, size_t *len_out, mode_t *mode_out, char *err,
                   size_t err_size) {
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (fd != STDIN_FILENO && !S_ISREG(st.st_mode))) {
        snprintf(err, err_size, "%s is not a regular file", path);
        if (fd != STDIN_FILENO)
            close(fd);
        return NULL;
    }
    *mode_out = fd == STDIN_FILENO ? 0 : st.st_mode;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            snprintf(err, err_size, "out of memory reading %s", path);
            break;
        }
        if (len + 1 >= cap) {
            char *nb = cap >= CTL_FILE_MAX ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                snprintf(err, err_size, "%s is larger than %d bytes", path, CTL_FILE_MAX);
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno));
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0) {
            buf[len] = '\0';
            *len_out = len;
            break;
        }
        len += (size_t)r;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    return buf;
}

int ctl_conf_load_file(const char *path, ctl_conf *conf, char *err, size_t err_size) {
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return 1;
    size_t len = 0;
    mode_t mode = 0;
    char *text = slurp(path, &len, &mode, err, err_size);
    if (!text)
        return -1;
    ctl_conf parsed;
    memset(&parsed, 0, sizeof(parsed));
    char perr[256];
    int rc = ctl_conf_parse(text, len, &parsed, perr, sizeof(perr));
    free(text);
    if (rc != 0) {
        snprintf(err, err_size, "%s: %s", path, perr);
        return -1;
    }
    if (parsed.token[0] && (mode & 077)) {
        snprintf(err, err_size,
                 "%s holds a token and is readable by others (mode %03o); run chmod 600 %s", path,
                 (unsigned)(mode & 0777), path);
        memset(&parsed, 0, sizeof(parsed));
        return -1;
    }
    if (parsed.url[0])
        memcpy(conf->url, parsed.url, sizeof(conf->url));
    if (parsed.token[0])
        memcpy(conf->token, parsed.token, sizeof(conf->token));
    if (parsed.token_file[0])
        memcpy(conf->token_file, parsed.token_file, sizeof(conf->token_file));
    if (parsed.tenant[0])
        memcpy(conf->tenant, parsed.tenant, sizeof(conf->tenant));
    memset(&parsed, 0, sizeof(parsed));
    return 0;
}

int ctl_read_secret_file(const char *path, const char *what, int check_mode, char *out,
                         size_t out_size, char *err, size_t err_size) {
    size_t len = 0;
    mode_t mode = 0;
    char *text = slurp(path, &len, &mode, err, err_size);
    if (!text)
        return -1;
    int rc = -1;
    const char *s = text;
    char *nl = memchr(text, '\n', len);
    size_t n = nl ? (size_t)(nl - text) : len;
    while (n > 0 && (is_space(s[0]) || s[0] == '\n'))
        s++, n--;
    while (n > 0 && is_space(s[n - 1]))
        n--;
    if (check_mode && (mode & 077))
        snprintf(err, err_size, "%s (%s) is readable by others (mode %03o); run chmod 600 %s", path,
                 what, (unsigned)(mode & 0777), path);
    else if (n == 0)
        snprintf(err, err_size, "%s (%s) is empty", path, what);
    else if (memchr(s, '\0', n))
        snprintf(err, err_size, "%s (%s) holds a NUL byte", path, what);
    else if (n >= out_size)
        snprintf(err, err_size, "%s (%s) is longer than %zu bytes", path, what, out_size - 1);
    else {
        memcpy(out, s, n);
        out[n] = '\0';
        rc = 0;
    }
    memset(text, 0, len);
    free(text);
    return rc;
}

int ctl_conf_default_path(char *out, size_t out_size) {
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(out, out_size, "%s/mspsync/config", xdg);
    else if (home && home[0])
        n = snprintf(out, out_size, "%s/.config/mspsync/config", home);
    else
        return -1;
    return n > 0 && (size_t)n < out_size ? 0 : -1;
}
