/* The "image program" of the sandbox tests (tests/run_sandbox_root.rs),
 * compiled statically with the host's gcc and put into images the tests
 * craft. It runs a list of actions given as arguments, each a verb and its
 * fixed number of operands, and prints one line per action:
 * "VERB OPERAND: ok" or "VERB OPERAND: ENAME" (the errno's name), with
 * what it found for `stat`, `statvfs`, `read`, `id` and `writable-under`. It exits 0
 * unless told otherwise (`exit N`). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

struct attr {
    uint64_t set, clear, propagation, userns;
};

static const char *name(int error) {
    switch (error) {
    case 0: return "ok";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EROFS: return "EROFS";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ENOSYS: return "ENOSYS";
    default: {
        static char text[32];
        snprintf(text, sizeof text, "errno %d", error);
        return text;
    }
    }
}

static int report(const char *verb, const char *operand, int ok) {
    int error = ok ? 0 : errno;
    printf("%s %s: %s\n", verb, operand, name(error));
    return error;
}

static int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t written = write(fd, text, strlen(text));
    int error = errno;
    close(fd);
    errno = error;
    return written == (ssize_t)strlen(text);
}

static int create(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return 0;
    int ok = write(fd, "x", 1) == 1;
    int error = errno;
    close(fd);
    errno = error;
    return ok;
}

/* Regular files under `dir` (symlinks not followed) that open for
 * writing; nothing is written. */
static void writable_under(const char *dir, long *writable, long *total) {
    DIR *stream = opendir(dir);
    if (!stream) return;
    struct dirent *entry;
    while ((entry = readdir(stream))) {
        if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, "..")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            writable_under(path, writable, total);
        } else if (S_ISREG(st.st_mode)) {
            (*total)++;
            int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
            if (fd >= 0) {
                (*writable)++;
                printf("  writable: %s\n", path);
                close(fd);
            }
        }
    }
    closedir(stream);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int i = 1;
    while (i < argc) {
        const char *verb = argv[i];
        const char *a = i + 1 < argc ? argv[i + 1] : "";
        const char *b = i + 2 < argc ? argv[i + 2] : "";
        if (!strcmp(verb, "write")) {
            report(verb, a, write_text(a, b));
            i += 3;
        } else if (!strcmp(verb, "create")) {
            report(verb, a, create(a));
            i += 2;
        } else if (!strcmp(verb, "remount-rw")) {
            report(verb, a, mount(NULL, a, NULL, MS_REMOUNT | MS_BIND, NULL) == 0);
            i += 2;
        } else if (!strcmp(verb, "setattr-rw")) {
            struct attr attr = {0, 1 /* MOUNT_ATTR_RDONLY */, 0, 0};
            report(verb, a,
                   syscall(SYS_mount_setattr, AT_FDCWD, a, 0x8000 /* AT_RECURSIVE */, &attr,
                           sizeof attr) == 0);
            i += 2;
        } else if (!strcmp(verb, "umount")) {
            report(verb, a, umount2(a, MNT_DETACH) == 0);
            i += 2;
        } else if (!strcmp(verb, "mount-proc")) {
            report(verb, a, mount("proc", a, "proc", 0, NULL) == 0);
            i += 2;
        } else if (!strcmp(verb, "mount-tmpfs")) {
            report(verb, a, mount("tmpfs", a, "tmpfs", 0, NULL) == 0);
            i += 2;
        } else if (!strcmp(verb, "bind")) {
            char operands[8200];
            snprintf(operands, sizeof operands, "%s %s", a, b);
            report(verb, operands, mount(a, b, NULL, MS_BIND, NULL) == 0);
            i += 3;
        } else if (!strcmp(verb, "sethostname")) {
            report(verb, a, sethostname(a, strlen(a)) == 0);
            i += 2;
        } else if (!strcmp(verb, "stat")) {
            struct stat st;
            if (lstat(a, &st) == 0)
                printf("stat %s: %o %u:%u\n", a, (unsigned)st.st_mode, (unsigned)st.st_uid,
                       (unsigned)st.st_gid);
            else
                report(verb, a, 0);
            i += 2;
        } else if (!strcmp(verb, "statvfs")) {
            struct statvfs st;
            if (statvfs(a, &st) == 0)
                printf("statvfs %s: %s\n", a, (st.f_flag & ST_RDONLY) ? "ro" : "rw");
            else
                report(verb, a, 0);
            i += 2;
        } else if (!strcmp(verb, "read")) {
            int fd = open(a, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                report(verb, a, 0);
            } else {
                char buffer[65536];
                ssize_t got = read(fd, buffer, sizeof buffer);
                if (got < 0) report(verb, a, 0);
                else printf("read %s: %zd bytes\n", a, got);
                close(fd);
            }
            i += 2;
        } else if (!strcmp(verb, "writable-under")) {
            long writable = 0, total = 0;
            writable_under(a, &writable, &total);
            printf("writable-under %s: %ld of %ld\n", a, writable, total);
            i += 2;
        } else if (!strcmp(verb, "id")) {
            printf("id: %u:%u euid %u\n", (unsigned)getuid(), (unsigned)getgid(),
                   (unsigned)geteuid());
            i += 1;
        } else if (!strcmp(verb, "echo")) {
            printf("%s\n", a);
            i += 2;
        } else if (!strcmp(verb, "exit")) {
            return atoi(a);
        } else {
            fprintf(stderr, "probe: unknown verb %s\n", verb);
            return 2;
        }
    }
    return 0;
}
