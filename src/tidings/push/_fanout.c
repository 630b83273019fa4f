/* The hub's fan-out loop in C: tidings/push/fanout.py's fanout_python, plus a
 * direct send() of the cached WebSocket frame where that is provably safe.
 *
 * Why: per connection and poke, uvloop's transport.write from a Python loop
 * costs ~1.2-1.3x what a C epoll server spends (bench/fanout.py); the kernel's
 * TCP send is most of both. This loop keeps the kernel part and drops the
 * Python part (docs/PERFORMANCE.md, "Push fan-out").
 *
 * fanout(conns, project, version, msg, queue) -> int
 *
 * For each conn in conns, the same decisions as fanout_python:
 *   if conn.versions[project] >= version: skip
 *   conn.versions[project] = version
 *   if conn.paused_since is not None: queue(conn, project, msg); continue
 *   write now (counted)
 * "Write now" is conn.write(msg), except for a connection with conn.wfd >= 0
 * (the transport's socket, set by websocket.py and sio/endpoint.py) once
 * msg.frames[type(conn).direct_frame_key] is bytes (conn.write caches it under
 * that key on first use; /ws and Socket.IO frame the message differently, so
 * each type names its own): those are written in a second pass, and the frame
 * is send()-ed here when, checked after every write() and queue() of this
 * poke, with nothing run between the check and the send() but the same two
 * side-effect-free checks of other transports, both hold:
 *   - conn.transport.is_closing() is false: the transport has not started to
 *     close, so its fd is still open and still this connection's (uvloop and
 *     asyncio close the fd only after is_closing() turns true; a closed fd
 *     number may already belong to a new connection);
 *   - conn.transport.get_write_buffer_size() == 0: nothing written earlier is
 *     still queued in user space, so these bytes cannot overtake it.
 * A partial send hands the rest to transport.write; EAGAIN or any error hands
 * the whole frame to transport.write, whose own write path then buffers it
 * (pause_writing, 4408 on a slow consumer) or reports the error
 * (connection_lost), as if the loop had called it in the first place. All the
 * sends of a poke go out back to back, as a C server's would (send_all).
 * Otherwise, conn.write(msg) as usual.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <structmember.h>

#include <errno.h>
#include <string.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/types.h>

static PyObject *s_versions, *s_paused_since, *s_wfd, *s_write, *s_frames, *s_transport,
    *s_is_closing, *s_get_write_buffer_size, *s_direct_frame_key;

/* 1: the transport can take a direct send now; 0: it cannot (closing, or
 * buffering); -1: a Python exception is set. */
static int
sendable(PyObject *transport)
{
    if (transport == Py_None)
        return 0;
    PyObject *r = PyObject_CallMethodNoArgs(transport, s_is_closing);
    if (r == NULL)
        return -1;
    int closing = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (closing != 0)
        return closing < 0 ? -1 : 0;
    r = PyObject_CallMethodNoArgs(transport, s_get_write_buffer_size);
    if (r == NULL)
        return -1;
    Py_ssize_t buffered = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (buffered == -1 && PyErr_Occurred())
        return -1;
    return buffered == 0;
}

/* Where a connection type keeps its slots, so the loop reads them as
 * PyMember_GetOne would, without the attribute lookup per connection; and so
 * it can prefetch the next connections' objects while the kernel sends (the
 * loop's own time is mostly cache misses on 10,000 scattered objects). Valid
 * while the type's version tag is unchanged (a type change resets it). */
typedef struct {
    PyTypeObject *type;
    unsigned int tag;
    Py_ssize_t versions, paused_since, wfd, transport;
    PyObject *key; /* the type's direct_frame_key (a new reference), or NULL */
} Layout;

static Py_ssize_t
slot_offset(PyTypeObject *type, PyObject *name)
{
    /* On the type, a slot's attribute is its member descriptor. */
    PyObject *d = PyObject_GetAttr((PyObject *)type, name);
    if (d == NULL) {
        PyErr_Clear(); /* the attribute lookup per connection raises it */
        return -1;
    }
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX)
            offset = m->offset;
    }
    Py_DECREF(d);
    return offset;
}

/* The frame key a type declares (a str), or NULL: no direct send for it. */
static PyObject *
frame_key_of(PyTypeObject *type)
{
    PyObject *key = PyObject_GetAttr((PyObject *)type, s_direct_frame_key);
    if (key == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (!PyUnicode_CheckExact(key)) {
        Py_DECREF(key);
        return NULL;
    }
    return key;
}

static int
layout_valid(const Layout *l, PyTypeObject *type)
{
    return l->type == type && l->tag == type->tp_version_tag &&
           (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG);
}

static void
layout_fill(PyTypeObject *type, Layout *l)
{
    Py_XSETREF(l->key, frame_key_of(type));
    l->versions = slot_offset(type, s_versions);
    l->paused_since = slot_offset(type, s_paused_since);
    l->wfd = slot_offset(type, s_wfd);
    l->transport = slot_offset(type, s_transport);
    if (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) {
        l->type = type;
        l->tag = type->tp_version_tag;
    } else {
        l->type = NULL; /* recomputed for every connection of this type */
    }
}

/* Layouts of the few connection types one project's watchers have (/ws,
 * Socket.IO, SSE), so that a mix costs no lookup per connection. */
#define MAX_TYPES 4

typedef struct {
    Layout l[MAX_TYPES];
    int next; /* the entry to refill when a new type comes */
} Layouts;

static const Layout *
layout_of(Layouts *ls, PyTypeObject *type)
{
    for (int i = 0; i < MAX_TYPES; i++)
        if (layout_valid(&ls->l[i], type))
            return &ls->l[i];
    Layout *l = &ls->l[ls->next];
    ls->next = (ls->next + 1) % MAX_TYPES;
    layout_fill(type, l);
    return l;
}

static void
layouts_clear(Layouts *ls)
{
    for (int i = 0; i < MAX_TYPES; i++)
        Py_CLEAR(ls->l[i].key);
}

/* The slot's value (borrowed), or NULL when unset or not a plain slot. */
static inline PyObject *
peek(PyObject *o, Py_ssize_t offset)
{
    return offset < 0 ? NULL : *(PyObject **)((char *)o + offset);
}

/* A new reference to the attribute: from the slot, else by attribute lookup
 * (which raises AttributeError for an unset slot, as Python would). */
static inline PyObject *
get(PyObject *o, Py_ssize_t offset, PyObject *name)
{
    PyObject *v = peek(o, offset);
    return v != NULL ? Py_NewRef(v) : PyObject_GetAttr(o, name);
}

static inline void
prefetch_object(const void *p, int lines)
{
    if (p == NULL)
        return;
    for (int i = 0; i < lines; i++)
        __builtin_prefetch((const char *)p + 64 * i, 0, 3);
}

/* Prefetch, in stages, what deciding for conns[i] reads: the object itself
 * DISTANCE ahead, what its slots point to DISTANCE/2 ahead, the versions
 * dict's table DISTANCE/4 ahead. Reads only slots of the cached layout's type. */
#define DISTANCE 8

static void
prefetch(PyObject **conns, Py_ssize_t i, Py_ssize_t n, const Layout *l)
{
    if (i + DISTANCE < n)
        prefetch_object(conns[i + DISTANCE], 3);
    Py_ssize_t j = i + DISTANCE / 2;
    if (j < n && Py_TYPE(conns[j]) == l->type) {
        prefetch_object(peek(conns[j], l->versions), 1);
        prefetch_object(peek(conns[j], l->wfd), 1);
        prefetch_object(peek(conns[j], l->transport), 1);
    }
    j = i + DISTANCE / 4;
    if (j < n && Py_TYPE(conns[j]) == l->type) {
        PyObject *v = peek(conns[j], l->versions);
        if (v != NULL && PyDict_CheckExact(v))
            prefetch_object(((PyDictObject *)v)->ma_keys, 2);
    }
}

/* A connection the first pass chose for a direct send, its socket and frame. */
typedef struct {
    PyObject *conn;      /* borrowed from the snapshot */
    PyObject *transport; /* a new reference, read while the conn was in cache */
    PyObject *frame;     /* borrowed from the Frames cache */
    int fd;
    Py_ssize_t sent; /* set by send_all: bytes sent, or one of the codes below */
} Direct;

#define NOT_SENDABLE (-2) /* the transport could not take a direct send: write() */
#define SEND_FAILED (-1)  /* EAGAIN or an error: the whole frame to transport.write */

/* The message's frames found so far, one per frame key (a poke reaches at most
 * a few connection types): new references, released after the second pass. */
#define MAX_KEYS 4

typedef struct {
    PyObject *frames; /* msg.frames, once read */
    int count;
    PyObject *key[MAX_KEYS];
    PyObject *frame[MAX_KEYS];
} Frames;

/* The cached bytes under key (borrowed), NULL when not framed yet (or no room
 * to remember it: that connection then goes through write()); -1 on error. */
static int
frame_for(Frames *f, PyObject *msg, PyObject *key, PyObject **out)
{
    *out = NULL;
    for (int i = 0; i < f->count; i++) {
        if (f->key[i] == key) {
            *out = f->frame[i];
            return 0;
        }
    }
    if (f->count == MAX_KEYS)
        return 0;
    if (f->frames == NULL && (f->frames = PyObject_GetAttr(msg, s_frames)) == NULL)
        return -1;
    if (!PyDict_Check(f->frames))
        return 0;
    PyObject *frame = PyDict_GetItemWithError(f->frames, key);
    if (frame == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyBytes_CheckExact(frame))
        return 0;
    f->key[f->count] = Py_NewRef(key);
    f->frame[f->count] = Py_NewRef(frame);
    f->count++;
    *out = frame;
    return 0;
}

static void
frames_clear(Frames *f)
{
    for (int i = 0; i < f->count; i++) {
        Py_DECREF(f->key[i]);
        Py_DECREF(f->frame[i]);
    }
    f->count = 0;
    Py_CLEAR(f->frames);
}

/* Keep the first Python error and go on: every chosen connection (its version
 * already raised) still gets its frame. */
typedef struct {
    PyObject *type, *value, *tb;
} Error;

static void
keep_first_error(Error *e)
{
    if (e->type == NULL)
        PyErr_Fetch(&e->type, &e->value, &e->tb);
    else
        PyErr_Clear();
}

/* The second pass, in three steps. Step 1 asks each transport whether it can
 * take a direct send (sendable). Step 2 sends, back to back: between the two
 * steps only the same side-effect-free checks of other transports run, so what
 * step 1 found still holds at each send(), and
 * with no time spent between sends the receivers are woken less often (a
 * sender that pauses between sends finds them asleep; docs/PERFORMANCE.md).
 * Step 3 hands on what step 2 left, in order: the rest of a partial send, or the
 * whole frame after EAGAIN or an error, to transport.write, whose own write path
 * then buffers it (pause_writing, 4408 on a slow consumer) or reports the error
 * (connection_lost); a connection that was not sendable goes through write(). */
static int
send_all(Direct *direct, Py_ssize_t count, PyObject *msg)
{
    Error exc = {NULL, NULL, NULL};
    for (Py_ssize_t i = 0; i < count; i++) {
        /* is_closing and get_write_buffer_size read fields anywhere in the
         * transport object (uvloop's is ~660 bytes): fetch its header two
         * ahead, then all of it one ahead. */
        if (i + 2 < count)
            prefetch_object(direct[i + 2].transport, 1);
        if (i + 1 < count) {
            PyObject *t = direct[i + 1].transport;
            Py_ssize_t size = Py_TYPE(t)->tp_basicsize;
            prefetch_object(t, (int)((size < 1024 ? size : 1024) / 64 + 1));
        }
        int ok = sendable(direct[i].transport);
        if (ok < 0)
            keep_first_error(&exc);
        direct[i].sent = ok > 0 ? 0 : NOT_SENDABLE;
    }

    for (Py_ssize_t i = 0; i < count; i++) {
        Direct *d = &direct[i];
        if (d->sent == NOT_SENDABLE)
            continue;
        ssize_t n;
        do {
            n = send(d->fd, PyBytes_AS_STRING(d->frame), (size_t)PyBytes_GET_SIZE(d->frame),
                     MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        d->sent = n < 0 ? SEND_FAILED : (Py_ssize_t)n;
    }

    for (Py_ssize_t i = 0; i < count; i++) {
        Direct *d = &direct[i];
        Py_ssize_t size = PyBytes_GET_SIZE(d->frame);
        if (d->sent == size)
            continue;
        PyObject *r;
        if (d->sent == NOT_SENDABLE) {
            r = PyObject_CallMethodOneArg(d->conn, s_write, msg);
        } else {
            PyObject *rest = d->sent > 0 ? PyBytes_FromStringAndSize(
                                               PyBytes_AS_STRING(d->frame) + d->sent, size - d->sent)
                                         : Py_NewRef(d->frame);
            r = rest == NULL ? NULL : PyObject_CallMethodOneArg(d->transport, s_write, rest);
            Py_XDECREF(rest);
        }
        if (r == NULL)
            keep_first_error(&exc);
        else
            Py_DECREF(r);
    }
    if (exc.type != NULL) {
        PyErr_Restore(exc.type, exc.value, exc.tb);
        return -1;
    }
    return 0;
}

/* Two passes. The first decides for every connection (version, paused, which
 * way to write) with no system call in between, so its cache misses on
 * scattered objects overlap; the second does the sends. Same outcome as one
 * pass: a connection's decision depends only on its own state, and what runs
 * between (write() of other connections, queue, pause_writing) changes no
 * other connection's. */
static PyObject *
fanout(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "fanout(conns, project, version, msg, queue)");
        return NULL;
    }
    PyObject *project = args[1], *version = args[2], *msg = args[3], *queue = args[4];
    Frames frames = {NULL, 0, {NULL}, {NULL}};
    Py_ssize_t sent = 0, count = 0;
    Layouts layouts;
    memset(&layouts, 0, sizeof layouts);
    int failed = 0;

    /* A snapshot: the loop calls Python code (write, queue), which must not
     * change the set anyway (the Python loop would raise). */
    PyObject *snapshot = PySequence_List(args[0]);
    if (snapshot == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(snapshot);
    PyObject **conns = ((PyListObject *)snapshot)->ob_item;
    Direct *direct = PyMem_Malloc(sizeof(Direct) * (size_t)(n > 0 ? n : 1));
    if (direct == NULL) {
        Py_DECREF(snapshot);
        return PyErr_NoMemory();
    }

    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *conn = conns[i]; /* owned by the snapshot */
        const Layout *layout = layout_of(&layouts, Py_TYPE(conn));
        prefetch(conns, i, n, layout);

        PyObject *versions = get(conn, layout->versions, s_versions);
        if (versions == NULL)
            goto error;
        PyObject *held;
        if (PyDict_CheckExact(versions)) {
            held = PyDict_GetItemWithError(versions, project);
            if (held == NULL) {
                if (!PyErr_Occurred())
                    (void)PyObject_GetItem(versions, project); /* raises the KeyError */
                Py_DECREF(versions);
                goto error;
            }
            Py_INCREF(held);
        } else {
            held = PyObject_GetItem(versions, project);
            if (held == NULL) {
                Py_DECREF(versions);
                goto error;
            }
        }
        int newer = PyObject_RichCompareBool(held, version, Py_GE);
        Py_DECREF(held);
        if (newer != 0) {
            Py_DECREF(versions);
            if (newer < 0)
                goto error;
            continue;
        }
        int set_failed = PyObject_SetItem(versions, project, version);
        Py_DECREF(versions);
        if (set_failed)
            goto error;

        PyObject *paused = get(conn, layout->paused_since, s_paused_since);
        if (paused == NULL)
            goto error;
        Py_DECREF(paused); /* only compared with None below */
        if (paused != Py_None) {
            PyObject *r = PyObject_CallFunctionObjArgs(queue, conn, project, msg, NULL);
            if (r == NULL)
                goto error;
            Py_DECREF(r);
            continue;
        }
        sent++;

        PyObject *wfd = get(conn, layout->wfd, s_wfd);
        if (wfd == NULL)
            goto error;
        long fd = PyLong_AsLong(wfd);
        Py_DECREF(wfd);
        if (fd == -1 && PyErr_Occurred())
            goto error;
        if (fd > INT_MAX)
            fd = -1;
        PyObject *frame = NULL;
        if (fd >= 0 && layout->key != NULL && frame_for(&frames, msg, layout->key, &frame) < 0)
            goto error;
        if (frame != NULL) {
            PyObject *transport = get(conn, layout->transport, s_transport);
            if (transport == NULL)
                goto error;
            direct[count].conn = conn;
            direct[count].transport = transport;
            direct[count].frame = frame;
            direct[count].fd = (int)fd;
            count++;
            continue;
        }
        /* Not direct, or the first of this message: write() frames it (and caches it). */
        PyObject *r = PyObject_CallMethodOneArg(conn, s_write, msg);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
    }
    goto second_pass;

error:
    failed = 1;
second_pass:
    /* Even after an error: the chosen connections' versions were raised. */
    if (count > 0) {
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        if (send_all(direct, count, msg) < 0) {
            if (failed) /* keep the first error */
                PyErr_Clear();
            else
                failed = 1;
        }
        if (exc_type != NULL)
            PyErr_Restore(exc_type, exc_value, exc_tb);
    }
    for (Py_ssize_t i = 0; i < count; i++)
        Py_DECREF(direct[i].transport);
    PyMem_Free(direct);
    Py_DECREF(snapshot);
    frames_clear(&frames);
    layouts_clear(&layouts);
    return failed ? NULL : PyLong_FromSsize_t(sent);
}

static PyMethodDef methods[] = {
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(conns, project, version, msg, queue) -> int: the hub's fan-out "
     "loop (see tidings.push.fanout)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tidings.push._fanout",
    .m_doc = "The hub's fan-out loop in C (see tidings.push.fanout).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__fanout(void)
{
#define INTERN(var, text)                                   \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return NULL;
    INTERN(s_versions, "versions");
    INTERN(s_paused_since, "paused_since");
    INTERN(s_wfd, "wfd");
    INTERN(s_write, "write");
    INTERN(s_frames, "frames");
    INTERN(s_transport, "transport");
    INTERN(s_is_closing, "is_closing");
    INTERN(s_get_write_buffer_size, "get_write_buffer_size");
    INTERN(s_direct_frame_key, "direct_frame_key");
#undef INTERN
    return PyModule_Create(&module);
}
