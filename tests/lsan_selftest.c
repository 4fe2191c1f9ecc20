/*
 * The LeakSanitizer self-test (tests/lsan-selftest.sh): a client of
 * libvirt's test driver that frees everything ("clean") or forgets one
 * thing libvirt allocated for it, as the daemon could: the XML of a
 * domain ("leak-xml", a string libvirt allocates through GLib, which the
 * old suppression of every stack through libglib hid).  Built with the
 * sanitizer flags of build-asan and run with tests/lsan.supp, a clean run
 * must be silent (the suppressions cover libvirt's one-time state) and the
 * forgotten allocation must be reported (they hide nothing of ours).
 * "leak-saved-error" forgets a virSaveLastError() copy, the one leak of
 * libvirt's own that tests/lsan.supp hides (its RPC client's close race):
 * it must be silent, which proves the suppression matches with the
 * suite's unwinder.
 */
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>

/* The leaked pointer passes through here, then is dropped: no stale
 * stack slot of main() can keep it reachable when LSan looks. */
static void	*volatile lost;

int
main(int argc, char **argv)
{
	const char	 *what = argc > 1 ? argv[1] : "clean";
	virConnectPtr	  conn;
	virDomainPtr	  dom;
	char		 *xml;

	if ((conn = virConnectOpen("test:///default")) == NULL)
		return 2;
	if ((dom = virDomainLookupByName(conn, "test")) == NULL)
		return 3;
	if ((xml = virDomainGetXMLDesc(dom, 0)) == NULL)
		return 4;
	if (strcmp(what, "leak-xml") == 0)
		lost = xml;
	else
		free(xml);
	lost = NULL;
	if (strcmp(what, "leak-saved-error") == 0)
		lost = virSaveLastError();
	lost = NULL;
	virDomainFree(dom);
	virConnectClose(conn);
	printf("%s: done\n", what);
	return 0;
}
