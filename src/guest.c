/*
 * The guest table: every guest libvirt knows, with its state and console
 * aliases.  It is filled when the connection comes up and kept current by
 * lifecycle events, so front doors never make a blocking libvirt call per
 * client just to learn whether a guest exists or runs.
 *
 * The table does not know who uses it: the sessions (a guest that starts
 * wakes the clients waiting for it; one that stops ends their sessions)
 * and the unix front door (a socket per defined guest and per running
 * transient guest) subscribe to its changes (guest_subscribe()), and hear
 * of them in the order they subscribed.  It hears from the hypervisor
 * through the callbacks in guest_hv_cbs.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "virtconsoled.h"

static struct guests	guest_table = TAILQ_HEAD_INITIALIZER(guest_table);

struct guest_subscriber {
	guest_subscriber_fn		 fn;
	void				*arg;
	TAILQ_ENTRY(guest_subscriber)	 entry;
};
static TAILQ_HEAD(, guest_subscriber) guest_subscribers =
    TAILQ_HEAD_INITIALIZER(guest_subscribers);

/* Hear of every change of the table, after those who subscribed first. */
void
guest_subscribe(guest_subscriber_fn fn, void *arg)
{
	struct guest_subscriber	*sub;

	sub = xcalloc(1, sizeof *sub);
	sub->fn = fn;
	sub->arg = arg;
	TAILQ_INSERT_TAIL(&guest_subscribers, sub, entry);
}

static void
guest_notify(struct guest *g, enum guest_event ev)
{
	struct guest_subscriber	*sub;

	TAILQ_FOREACH(sub, &guest_subscribers, entry)
		sub->fn(g, ev, sub->arg);
}

struct guests *
guest_list(void)
{
	return &guest_table;
}

struct guest *
guest_find_name(const char *name)
{
	struct guest	*g;

	TAILQ_FOREACH(g, &guest_table, entry) {
		if (strcmp(g->name, name) == 0)
			return g;
	}
	return NULL;
}

struct guest *
guest_find_uuid(const char *uuid)
{
	struct guest	*g;

	TAILQ_FOREACH(g, &guest_table, entry) {
		if (strcasecmp(g->uuid, uuid) == 0)
			return g;
	}
	return NULL;
}

/* The guest of hypervisor hv (by name) with that UUID, or NULL. */
struct guest *
guest_find(const char *hv, const char *uuid)
{
	struct guest	*g;

	TAILQ_FOREACH(g, &guest_table, entry) {
		if (strcasecmp(g->uuid, uuid) == 0 &&
		    strcmp(guest_hv_name(g), hv) == 0)
			return g;
	}
	return NULL;
}

/* The name of g's hypervisor ("default" for a guest of none: tests). */
const char *
guest_hv_name(const struct guest *g)
{
	return g->hv != NULL ? hv_name(g->hv) : TOKEN_HV_DEFAULT;
}

/* 36 characters in the 8-4-4-4-12 hex layout of a UUID. */
int
guest_uuid_shaped(const char *s)
{
	size_t	i;

	if (strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/*
 * A guest as a client names it, among hypervisor hv's guests (NULL: every
 * hypervisor's): a UUID-shaped string by UUID only, so that a guest named
 * like another guest's UUID can never shadow it; anything else by name.
 * A name found on several hypervisors is ambiguous: NULL, with *several
 * set (guest_lookup_hvs() lists them).  A UUID found on several (a
 * migration leaves an inactive copy behind) is the running guest, if
 * exactly one runs; else ambiguous too.
 */
/* Whether g is guest s (as guest_lookup() reads it) of hv (NULL: any). */
static int
guest_matches(const struct guest *g, const char *hv, const char *s)
{
	if (hv != NULL && strcmp(guest_hv_name(g), hv) != 0)
		return 0;
	return guest_uuid_shaped(s) ? strcasecmp(g->uuid, s) == 0 :
	    strcmp(g->name, s) == 0;
}

struct guest *
guest_lookup(const char *hv, const char *s, int *several)
{
	struct guest	*g, *found = NULL, *running = NULL;
	unsigned int	 n = 0, nrunning = 0;

	*several = 0;
	TAILQ_FOREACH(g, &guest_table, entry) {
		if (!guest_matches(g, hv, s))
			continue;
		found = g;
		n++;
		if (g->active) {
			running = g;
			nrunning++;
		}
	}
	if (n <= 1)
		return found;
	if (guest_uuid_shaped(s) && nrunning == 1)
		return running;
	*several = 1;
	return NULL;
}

/*
 * The hypervisors (in scope hv, NULL: all) where guest s (as
 * guest_lookup() reads it) is found, as "a, b" into out, in the
 * configuration's order (not the order they connected in): a 409's body.
 */
void
guest_lookup_hvs(const char *hv, const char *s, char *out, size_t len)
{
	struct hv	*h;
	struct guest	*g;
	size_t		 n = 0;
	int		 w;

	if (len == 0)
		return;
	out[0] = '\0';
	for (h = hv_next(NULL); h != NULL; h = hv_next(h)) {
		TAILQ_FOREACH(g, &guest_table, entry) {
			if (g->hv == h && guest_matches(g, hv, s))
				break;
		}
		if (g == NULL)
			continue;
		w = snprintf(out + n, len - n, "%s%s", n > 0 ? ", " : "",
		    hv_name(h));
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
}

/*
 * The device libvirt opens for "no alias": the first <console>, else the
 * first <serial>.  It is always aliases[0].
 */
const char *
guest_default_alias(const struct guest *g)
{
	return g->naliases > 0 ? g->aliases[0] : NULL;
}

int
guest_has_alias(const struct guest *g, const char *alias)
{
	size_t	i;

	for (i = 0; i < g->naliases; i++) {
		if (strcmp(g->aliases[i], alias) == 0)
			return 1;
	}
	return 0;
}

void
guest_free_aliases(char **aliases, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(aliases[i]);
	free(aliases);
}

static void
guest_add_alias(char ***aliases, size_t *n, const char *alias)
{
	size_t	i;

	/* A <console> mirroring <serial> shares its alias: keep one key. */
	for (i = 0; i < *n; i++) {
		if (strcmp((*aliases)[i], alias) == 0)
			return;
	}
	*aliases = xrealloc(*aliases, (*n + 1) * sizeof **aliases);
	(*aliases)[(*n)++] = xstrdup(alias);
}

static xmlNodePtr
guest_xml_child(xmlNodePtr node, const char *name)
{
	xmlNodePtr	c;

	for (c = node->children; c != NULL; c = c->next) {
		if (c->type == XML_ELEMENT_NODE &&
		    strcmp((const char *)c->name, name) == 0)
			return c;
	}
	return NULL;
}

static char *
guest_xml_prop(xmlNodePtr node, const char *child, const char *prop)
{
	xmlNodePtr	 c = child != NULL ? guest_xml_child(node, child) : node;
	xmlChar		*v;
	char		*s;

	if (c == NULL || (v = xmlGetProp(c, (const xmlChar *)prop)) == NULL)
		return NULL;
	s = xstrdup((const char *)v);
	xmlFree(v);
	return s;
}

/*
 * libvirt takes guest names (virsh domrename) holding bytes that XML
 * forbids, control bytes or invalid UTF-8, and writes them raw into the
 * guest's XML.  Such a document is read again with each of those bytes as
 * '?' rather than losing the guest's consoles; anything else that does not
 * parse is still an error.
 */
static xmlDocPtr
guest_xml_read(const char *xml, size_t len)
{
	const int	 opts = XML_PARSE_NONET | XML_PARSE_NOERROR |
			    XML_PARSE_NOWARNING;
	const unsigned char *p = (const unsigned char *)xml;
	xmlDocPtr	 doc;
	char		*copy;
	size_t		 i, n, mended = 0;

	doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL, opts);
	if (doc != NULL)
		return doc;
	copy = xmalloc(len + 1);
	for (i = 0; i < len; i += n) {
		n = utf8_len(p + i, len - i);
		if (n == 0 || (p[i] < 0x20 && p[i] != '\t' &&
		    p[i] != '\n' && p[i] != '\r')) {
			copy[i] = '?';
			n = 1;
			mended++;
		} else
			memcpy(copy + i, p + i, n);
	}
	if (mended > 0)
		doc = xmlReadMemory(copy, (int)len, "domain.xml", NULL, opts);
	free(copy);
	return doc;
}

/*
 * The console aliases of a domain, from its XML: consoles first (the
 * first one is what libvirt opens for "no alias"), then serial ports.
 * A running domain's XML carries <alias name=.../>; an inactive one's
 * usually does not, so the names are derived the way libvirt's QEMU driver
 * assigns them at start: a first console that mirrors a serial port takes
 * that port's alias serialN, other consoles are consoleI by position, and
 * serial ports are serialN by position.  Returns 0, or -1 if the XML does
 * not parse.
 */
int
guest_parse_consoles(const char *xml, size_t len, int active,
    char ***aliases, size_t *naliases)
{
	xmlDocPtr	 doc;
	xmlNodePtr	 root, devices, c;
	char		*alias, *ttype, *port, buf[32];
	int		 nconsole = 0, nserial = 0;

	*aliases = NULL;
	*naliases = 0;
	if (len > INT32_MAX)
		return -1;
	doc = guest_xml_read(xml, len);
	if (doc == NULL)
		return -1;
	root = xmlDocGetRootElement(doc);
	if (root == NULL || strcmp((const char *)root->name, "domain") != 0) {
		xmlFreeDoc(doc);
		return -1;
	}
	if ((devices = guest_xml_child(root, "devices")) == NULL) {
		xmlFreeDoc(doc);
		return 0;
	}
	for (c = devices->children; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE ||
		    strcmp((const char *)c->name, "console") != 0)
			continue;
		alias = active ? guest_xml_prop(c, "alias", "name") : NULL;
		if (alias == NULL) {
			ttype = guest_xml_prop(c, "target", "type");
			port = guest_xml_prop(c, "target", "port");
			if (nconsole == 0 && (ttype == NULL ||
			    strcmp(ttype, "serial") == 0))
				snprintf(buf, sizeof buf, "serial%s",
				    port != NULL ? port : "0");
			else
				snprintf(buf, sizeof buf, "console%d",
				    nconsole);
			alias = xstrdup(buf);
			free(ttype);
			free(port);
		}
		guest_add_alias(aliases, naliases, alias);
		free(alias);
		nconsole++;
	}
	for (c = devices->children; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE ||
		    strcmp((const char *)c->name, "serial") != 0)
			continue;
		alias = active ? guest_xml_prop(c, "alias", "name") : NULL;
		if (alias == NULL) {
			snprintf(buf, sizeof buf, "serial%d", nserial);
			alias = xstrdup(buf);
		}
		guest_add_alias(aliases, naliases, alias);
		free(alias);
		nserial++;
	}
	xmlFreeDoc(doc);
	return 0;
}

/* Refresh one guest from libvirt.  This is a round trip per call. */
static void
guest_refresh(struct guest *g, virDomainPtr dom)
{
	char	*xml;
	char	**aliases;
	size_t	 n;
	int	 active, persistent;

	active = virDomainIsActive(dom);
	persistent = virDomainIsPersistent(dom);
	g->active = active == 1;
	g->persistent = persistent == 1;
	/* A new id for each run: the consoles' histories start a run on it. */
	g->domid = g->active ? virDomainGetID(dom) : 0;
	if ((xml = virDomainGetXMLDesc(dom, 0)) == NULL) {
		log_warnx("guest %s: cannot read its XML: %s",
		    log_esc(g->name), log_esc(virGetLastErrorMessage()));
		return;
	}
	if (guest_parse_consoles(xml, strlen(xml), g->active, &aliases,
	    &n) == -1) {
		log_warnx("guest %s: cannot parse its XML", log_esc(g->name));
		free(xml);
		return;
	}
	free(xml);
	guest_free_aliases(g->aliases, g->naliases);
	g->aliases = aliases;
	g->naliases = n;
}

/* A guest of hypervisor hv by UUID (each hypervisor has its own). */
static struct guest *
guest_find_hv_uuid(const struct hv *hv, const char *uuid)
{
	struct guest	*g;

	TAILQ_FOREACH(g, &guest_table, entry) {
		if (g->hv == hv && strcasecmp(g->uuid, uuid) == 0)
			return g;
	}
	return NULL;
}

static struct guest *
guest_add(struct hv *hv, virDomainPtr dom)
{
	struct guest	*g;
	char		 uuid[VIR_UUID_STRING_BUFLEN];
	const char	*name;

	if (virDomainGetUUIDString(dom, uuid) == -1 ||
	    (name = virDomainGetName(dom)) == NULL)
		return NULL;
	if ((g = guest_find_hv_uuid(hv, uuid)) != NULL) {
		if (strcmp(g->name, name) != 0) {
			/* Renamed: the unix socket follows the name. */
			free(g->name);
			g->name = xstrdup(name);
			guest_notify(g, GUEST_EV_CHANGED);
		}
		return g;
	}
	g = xcalloc(1, sizeof *g);
	g->hv = hv;
	memcpy(g->uuid, uuid, sizeof g->uuid);
	g->name = xstrdup(name);
	TAILQ_INSERT_TAIL(&guest_table, g, entry);
	return g;
}

static void
guest_remove(struct guest *g)
{
	log_info("guest %s uuid=%s: removed", log_esc(g->name), g->uuid);
	TAILQ_REMOVE(&guest_table, g, entry);
	g->persistent = g->active = 0;
	guest_notify(g, GUEST_EV_REMOVED);
	guest_free_aliases(g->aliases, g->naliases);
	free(g->name);
	free(g);
}

/* A new connection: list every guest and bring the table up to date. */
static void
guest_connected(struct hv *hv, virConnectPtr conn, void *arg)
{
	virDomainPtr	*doms = NULL;
	struct guest	*g, *next;
	int		 i, n;

	n = virConnectListAllDomains(conn, &doms, 0);
	if (n < 0) {
		log_warnx("guest: cannot list guests: %s hypervisor=%s",
		    log_esc(virGetLastErrorMessage()), hv_name(hv));
		return;
	}
	/* Only this hypervisor's guests: the others' are not its to drop. */
	TAILQ_FOREACH(g, &guest_table, entry)
		g->seen = g->hv != hv;
	for (i = 0; i < n; i++) {
		if ((g = guest_add(hv, doms[i])) != NULL) {
			guest_refresh(g, doms[i]);
			g->seen = 1;
			guest_notify(g, GUEST_EV_CHANGED);
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	TAILQ_FOREACH_SAFE(g, &guest_table, entry, next) {
		if (!g->seen)
			guest_remove(g);
	}
	log_info("guest: %d guests known hypervisor=%s", n, hv_name(hv));
	/* Clients that waited through the outage get their consoles now. */
	TAILQ_FOREACH(g, &guest_table, entry) {
		if (g->hv == hv && g->active)
			guest_notify(g, GUEST_EV_STARTED);
	}
}

/*
 * The connection is gone: sessions end (their streams died with it), but
 * the table and the unix sockets stay, so clients that come meanwhile are
 * told the guest is not running rather than finding no socket; the next
 * connection resyncs everything.
 */
static void
guest_disconnected(struct hv *hv, void *arg)
{
	struct guest	*g;

	/* Only this hypervisor's guests: the others' sessions go on. */
	TAILQ_FOREACH(g, &guest_table, entry) {
		if (g->hv == hv)
			guest_notify(g, GUEST_EV_LOST);
	}
	TAILQ_FOREACH(g, &guest_table, entry) {
		if (g->hv == hv)
			g->active = 0;
	}
}

static void
guest_lifecycle(struct hv *hv, virDomainPtr dom, int event, int detail,
    void *arg)
{
	struct guest	*g;

	if ((g = guest_add(hv, dom)) == NULL)
		return;
	switch (event) {
	case VIR_DOMAIN_EVENT_UNDEFINED:
		g->persistent = 0;
		if (!g->active) {
			guest_remove(g);
			return;
		}
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		g->active = 0;
		guest_notify(g, detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED ?
		    GUEST_EV_MIGRATED : GUEST_EV_STOPPED);
		/* A transient guest is gone once it stops. */
		if (virDomainIsPersistent(dom) != 1) {
			guest_remove(g);
			return;
		}
		guest_refresh(g, dom);
		break;
	case VIR_DOMAIN_EVENT_STARTED:
		guest_refresh(g, dom);
		g->active = 1;
		break;
	case VIR_DOMAIN_EVENT_DEFINED:
		guest_refresh(g, dom);
		break;
	default:
		/*
		 * Paused, resumed, crashed (then stopped): no change of the
		 * table, but a lifecycle event all the same: a captured
		 * console held elsewhere is tried again at once.
		 */
		guest_notify(g, GUEST_EV_CHANGED);
		return;
	}
	guest_notify(g, GUEST_EV_CHANGED);
	if (event == VIR_DOMAIN_EVENT_STARTED)
		guest_notify(g, GUEST_EV_STARTED);
}

/*
 * A reload removed the hypervisor: its guests' sessions end `hypervisor
 * removed`, then the guests leave the table (their sockets go).
 */
static void
guest_hv_removed(struct hv *hv, void *arg)
{
	struct guest	*g, *next;

	TAILQ_FOREACH(g, &guest_table, entry) {
		if (g->hv == hv)
			guest_notify(g, GUEST_EV_HV_REMOVED);
	}
	TAILQ_FOREACH_SAFE(g, &guest_table, entry, next) {
		if (g->hv == hv)
			guest_remove(g);
	}
}

/* What the hypervisor tells the table (hv_init()). */
const struct hv_cbs guest_hv_cbs = {
	guest_connected,
	guest_disconnected,
	guest_lifecycle,
	guest_hv_removed,
};

void
guest_shutdown(void)
{
	struct guest	*g;

	struct guest_subscriber	*sub;

	while ((g = TAILQ_FIRST(&guest_table)) != NULL) {
		TAILQ_REMOVE(&guest_table, g, entry);
		g->persistent = g->active = 0;
		guest_notify(g, GUEST_EV_REMOVED);
		guest_free_aliases(g->aliases, g->naliases);
		free(g->name);
		free(g);
	}
	/* NOLINTBEGIN(clang-analyzer-unix.Malloc): TAILQ, see .clang-tidy */
	while ((sub = TAILQ_FIRST(&guest_subscribers)) != NULL) {
		TAILQ_REMOVE(&guest_subscribers, sub, entry);
		free(sub);
	}
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
}
