// SPDX-License-Identifier: Apache-2.0
/* Config files: the documented examples load; every error names the file,
 * the line and the reason. */
#include <unistd.h>
#include "testlib.h"
#include "veil.h"

static char path[64];

static void write_cfg(const char *text)
{
	strcpy(path, "/tmp/veil-cfg-XXXXXX");
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
}

static void gw_example_loads(void)
{
	struct vm_gw_cfg c;
	char err[512] = "";
	CHECK(vm_gw_cfg_load("docs/veil-gw.conf.example", &c, err, sizeof(err)) == 0, "%s", err);
	CHECK(c.nroutes >= 2 && c.nvips >= 2, "routes %d vips %d", c.nroutes, c.nvips);
	vm_gw_cfg_free(&c);
}

static void node_example_loads(void)
{
	static struct vm_node_cfg c;
	char err[512] = "";
	CHECK(vm_node_cfg_load("docs/veil-node.conf.example", &c, err, sizeof(err)) == 0, "%s", err);
	CHECK(c.nvms >= 1, "vms %d", c.nvms);
}

static const char *GW_HEAD =
	"client_interface eth0\nunderlay4 198.19.0.1\ncookie_secret_file /tmp/x\n";

static void expect_gw_error(const char *tail, int line, const char *words)
{
	char text[2048], err[512] = "", want[96];
	struct vm_gw_cfg c;
	snprintf(text, sizeof(text), "%s%s", GW_HEAD, tail);
	write_cfg(text);
	int rc = vm_gw_cfg_load(path, &c, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:%d: ", path, line);
	CHECK(rc == -1, "accepted: %s", tail);
	CHECK(strstr(err, want) && strstr(err, words), "for '%s' got '%s'", tail, err);
	unlink(path);
}

static void gw_errors_name_file_and_line(void)
{
	expect_gw_error("route a.test 1 198.19.0.11\nbogus 1\n", 5, "unknown setting 'bogus'");
	expect_gw_error("route A.test 1 198.19.0.11\n", 4, "not a lowercase host name");
	expect_gw_error("route a.test 1 198.19.0.11\nroute a.test 2 198.19.0.12\n", 5, "given twice");
	expect_gw_error("route a.test x 198.19.0.11\n", 4, "bad VM id");
	expect_gw_error("route a.test 1 300.1.1.1\n", 4, "not an IP address");
	expect_gw_error("route a.test 1 2001:db8:ff::11\n", 4, "needs an underlay6");
	expect_gw_error("vip 198.18.100.1 443 drop\n", 4, "'rst' or 'alert'");
	expect_gw_error("vip 198.18.100.1 70000\n", 4, "bad port");
	expect_gw_error("mss4 100\n", 4, "bad MSS");
	expect_gw_error("route *.*.a 1 198.19.0.11\n", 4, "not a lowercase host name");
	expect_gw_error("underlay6 198.19.0.1\n", 4, "not an IPv6 address");
	/* IPv4-mapped IPv6 addresses: the IPv4 address is meant */
	expect_gw_error("vip ::ffff:198.18.100.1 443\n", 4, "IPv4-mapped IPv6 address");
	expect_gw_error("underlay6 ::ffff:198.19.0.1\n", 4, "IPv4-mapped IPv6 address");
	expect_gw_error("route a.test 1 ::ffff:198.19.0.11\n", 4, "IPv4-mapped IPv6 address");
	/* hello_asm's size: a power of two, 64..16384 */
	expect_gw_error("hellos_max 1000\n", 4, "bad hellos_max '1000' (a power of two, 64..16384)");
	expect_gw_error("hellos_max 32\n", 4, "bad hellos_max");
	expect_gw_error("hellos_max 32768\n", 4, "bad hellos_max");
	expect_gw_error("hellos_max\n", 4, "hellos_max");
}

/* hellos_max: 1024 unless the file says */
static void gw_hellos_max(void)
{
	char text[512], err[512] = "";
	struct vm_gw_cfg c;
	snprintf(text, sizeof(text), "%s", GW_HEAD);
	write_cfg(text);
	CHECK(vm_gw_cfg_load(path, &c, err, sizeof(err)) == 0 && c.hellos_max == 1024, "default %u: %s", c.hellos_max, err);
	vm_gw_cfg_free(&c);
	unlink(path);
	snprintf(text, sizeof(text), "%shellos_max 8192\n", GW_HEAD);
	write_cfg(text);
	CHECK(vm_gw_cfg_load(path, &c, err, sizeof(err)) == 0 && c.hellos_max == 8192, "set %u: %s", c.hellos_max, err);
	vm_gw_cfg_free(&c);
	unlink(path);
}

static void gw_missing_settings(void)
{
	char err[512] = "";
	struct vm_gw_cfg c;
	write_cfg("underlay4 198.19.0.1\ncookie_secret_file /tmp/x\n");
	CHECK(vm_gw_cfg_load(path, &c, err, sizeof(err)) == -1 && strstr(err, "client_interface"), "%s", err);
	unlink(path);
	CHECK(vm_gw_cfg_load("/nonexistent/veil.conf", &c, err, sizeof(err)) == -1 &&
	      strstr(err, "/nonexistent/veil.conf"), "%s", err);
}

static void node_errors(void)
{
	static struct vm_node_cfg c;
	char err[512] = "";
	write_cfg("mesh_interface eth0\nunderlay4 198.19.0.11\nvm 1 vm1 02:00:00:00:00:01 198.18.11.2\nvm 1 vm2 02:00:00:00:00:02 198.18.12.2\n");
	CHECK(vm_node_cfg_load(path, &c, err, sizeof(err)) == -1 && strstr(err, ":4: VM id 1 given twice"), "%s", err);
	unlink(path);
	write_cfg("mesh_interface eth0\nunderlay4 198.19.0.11\nvm 1 vm1 02:00:00:00:00:01 ::ffff:198.18.11.2\n");
	CHECK(vm_node_cfg_load(path, &c, err, sizeof(err)) == -1 && strstr(err, ":3: '::ffff:198.18.11.2' is an IPv4-mapped"),
	      "%s", err);
	unlink(path);
	write_cfg("mesh_interface eth0\nunderlay4 198.19.0.11\nvm 1 vm1 02:00:00:00:00 198.18.11.2\n");
	CHECK(vm_node_cfg_load(path, &c, err, sizeof(err)) == -1 && strstr(err, ":3: '02:00:00:00:00' is not a MAC"), "%s", err);
	unlink(path);
}

int main(void)
{
	RUN(gw_example_loads);
	RUN(node_example_loads);
	RUN(gw_errors_name_file_and_line);
	RUN(gw_hellos_max);
	RUN(gw_missing_settings);
	RUN(node_errors);
	return t_done();
}
