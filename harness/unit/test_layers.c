/* The layers the build enforces (GNUmakefile, scripts/check-layers.sh):
 * the real archives and driver objects pass the check, and the check
 * finds a device model calling up into vmm/ and a driver calling the
 * kernel behind the driver API. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int run(const char *cmd, char *out, size_t len)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(layers, the_build_has_no_forbidden_dependency)
{
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "cd '%s/..' && scripts/check-layers.sh '%s/asan' '%s/guest' 2>&1",
             MOAT_BUILD_DIR, MOAT_BUILD_DIR, MOAT_BUILD_DIR);
    int rc = run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "forbidden dependencies between layers:\n%s", out);
    cr_assert(strstr(out, "layers: ok"), "check-layers said: %s", out);
}

/* Build a fake tree: a device model calling a vmm/ function, a driver
 * calling a kernel function; both must be reported. */
Test(layers, a_model_calling_vmm_and_a_driver_calling_the_kernel_are_found)
{
    char dir[] = "/tmp/moat-layertest.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; mkdir -p guest/driver-domains/bad;"
             "echo 'int log_x(void) { return 1; }' > base.c;"
             "echo 'int broker_x(void) { return 2; }' > iommu.c;"
             "echo 'int vmm_only(void); int model(void) { return vmm_only(); }' > dev.c;"
             "echo 'int model(void); int vmm_only(void) { return 3; } int v(void) { return model(); }' > vmm.c;"
             "echo 'int gk_panic(void); int dd_x(void); int domain_main(void) { return gk_panic() + dd_x(); }' > drv.c;"
             "for l in base iommu dev vmm; do cc -c $l.c -o $l.o && ar rcs libmoat$l.a $l.o; done;"
             "cc -c drv.c -o guest/driver-domains/bad/drv.o;"
             "'%s/../scripts/check-layers.sh' . guest 2>&1 || echo \"exit $?\"",
             dir, MOAT_BUILD_DIR);
    run(cmd, out, sizeof out);
    cr_assert(strstr(out, "layers: dev (dev.o) uses vmm_only"), "model -> vmm not found:\n%s", out);
    cr_assert(strstr(out, "driver bad (drv.o) uses gk_panic"), "driver -> kernel not found:\n%s",
              out);
    cr_assert_null(strstr(out, "dd_x"), "the driver API was reported:\n%s", out);
    cr_assert_null(strstr(out, "uses model"), "vmm calling down was reported:\n%s", out);
    cr_assert(strstr(out, "exit 1"), "the check did not fail:\n%s", out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
