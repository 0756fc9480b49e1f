// SPDX-License-Identifier: Apache-2.0
/* Pinned maps whose layout no longer matches the programs being loaded.
 *
 * A restart reuses the maps pinned under pin_root, so established flows
 * survive it.  After an upgrade that changed a map's key or value (or a
 * restart with another flows_max), libbpf refuses the pinned map ("couldn't
 * reuse pinned map") and the daemon would not start, with no word on why.
 * Before the load, each pin that the new programs cannot reuse is removed
 * and said so in one log line with what changed; the load then makes and
 * pins a new map.  What the old map held is lost (the connections of an
 * old flow table end): the price of a layout change, named in the log. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "veil.h"

static void differs(char *why, size_t len, const char *what, __u32 was, __u32 now)
{
	size_t n = strlen(why);

	if (was != now && n < len)
		snprintf(why + n, len - n, "%s%s %u -> %u", n ? ", " : "", what, was, now);
}

/* A pinned object's fd is a map's when its fdinfo names a map_type. */
static bool is_map(int fd)
{
	char path[64], line[128];
	bool map = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!map && fgets(line, sizeof(line), f))
		map = !strncmp(line, "map_type:", 9);
	fclose(f);
	return map;
}

int vm_pins_refresh(struct bpf_object *obj)
{
	struct bpf_map *m;
	int replaced = 0;

	bpf_object__for_each_map(m, obj) {
		const char *path = bpf_map__pin_path(m);
		struct bpf_map_info info;
		__u32 len = sizeof(info);
		char why[200] = "";
		int fd;

		if (!path || bpf_map__is_internal(m))
			continue;
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;       /* nothing pinned yet (or not a map we can open): the load says */
		if (!is_map(fd)) {      /* a program or link pinned there: not ours to remove */
			close(fd);
			continue;
		}
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			close(fd);
			continue;
		}
		close(fd);
		/* what libbpf compares before it reuses a pin */
		differs(why, sizeof(why), "type", info.type, (__u32)bpf_map__type(m));
		differs(why, sizeof(why), "key bytes", info.key_size, bpf_map__key_size(m));
		differs(why, sizeof(why), "value bytes", info.value_size, bpf_map__value_size(m));
		if (bpf_map__max_entries(m))  /* 0: sized by libbpf at creation */
			differs(why, sizeof(why), "max_entries", info.max_entries, bpf_map__max_entries(m));
		differs(why, sizeof(why), "flags", info.map_flags, bpf_map__map_flags(m));
		if (!why[0])
			continue;
		if (unlink(path)) {
			int err = -errno;

			vm_log("event=pinned_map_stale map=%s path=%s reason=\"layout changed (%s) and the pin cannot be removed: %s\"",
			       bpf_map__name(m), path, why, strerror(-err));
			return err;
		}
		vm_log("event=pinned_map_replaced map=%s path=%s reason=\"layout changed (%s): a new map, "
		       "what the old one held is gone\"", bpf_map__name(m), path, why);
		replaced++;
	}
	return replaced;
}
