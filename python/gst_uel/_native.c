/* gst-uel: the C half of the Python package gst_uel
 * SPDX-License-Identifier: MIT
 *
 * A thin CPython extension over libgstuel-1.0: the loader, its stream, the
 * writer, dictionaries, pinned transfers, and the tensors reaching an
 * appsink at the end of a launch line.  Every tensor it returns is a
 * gst_uel._native.Tensor: one reference to a GstBuffer, mapped once, that
 * NumPy and PyTorch take without a copy through DLPack (__dlpack__,
 * __dlpack_device__) or NumPy's __array_interface__.  The frameworks'
 * arrays keep the Tensor alive, and the Tensor keeps the buffer alive:
 * its memory goes when the last of them goes, in whatever order.
 *
 * Blocking calls (opening and preloading a file, reading a tensor, waiting
 * for a batch or a sample, state changes) run without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include <gst/gst.h>
#include <gst-uel/uel.h>

/* ---- DLPack, as its specification (v0.8) lays the ABI out ---- */

typedef enum
{
  DL_CPU = 1,
  DL_CUDA = 2,
} DLDeviceType;

typedef struct
{
  DLDeviceType device_type;
  int32_t device_id;
} DLDevice;

typedef enum
{
  DL_INT = 0,
  DL_UINT = 1,
  DL_FLOAT = 2,
  DL_BFLOAT = 4,
  DL_COMPLEX = 5,
} DLDataTypeCode;

typedef struct
{
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
} DLDataType;

typedef struct
{
  void *data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t *shape;
  int64_t *strides;
  uint64_t byte_offset;
} DLTensor;

typedef struct DLManagedTensor
{
  DLTensor dl_tensor;
  void *manager_ctx;
  void (*deleter) (struct DLManagedTensor * self);
} DLManagedTensor;

/* the capsule's names: the producer's, and the one a consumer renames it
 * to when it takes the tensor over (and with it the call to the deleter) */
#define DLTENSOR_NAME "dltensor"

static PyObject *uel_py_error;

/* ---- errors ---- */

/* The library's GError as a Python exception carrying its message: the
 * built-in class a Python caller would expect where there is one
 * (FileNotFoundError for a missing file, KeyError for a missing tensor,
 * ValueError for a dictionary that does not decode), gst_uel.Error with
 * the domain and code otherwise. */
static PyObject *
raise_gerror (GError * error, gboolean key_error)
{
  PyObject *type = uel_py_error;

  if (!error) {
    PyErr_SetString (uel_py_error, "unknown error");
    return NULL;
  }
  if (error->domain == G_FILE_ERROR) {
    if (error->code == G_FILE_ERROR_NOENT)
      type = PyExc_FileNotFoundError;
    else if (error->code == G_FILE_ERROR_ACCES
        || error->code == G_FILE_ERROR_PERM)
      type = PyExc_PermissionError;
    else if (error->code == G_FILE_ERROR_ISDIR)
      type = PyExc_IsADirectoryError;
    else
      type = PyExc_OSError;
  } else if (error->domain == UEL_ERROR) {
    if (key_error && (error->code == UEL_ERROR_INVALID_ARGUMENT
            || error->code == UEL_ERROR_UNKNOWN_TENSOR))
      type = PyExc_KeyError;
    else if (error->code >= UEL_ERROR_DICT_NOT_U8
        && error->code <= UEL_ERROR_DICT_CHUNKED)
      type = PyExc_ValueError;
  }

  if (type == uel_py_error) {
    PyObject *exc = PyObject_CallFunction (type, "s", error->message);

    if (exc) {
      PyObject *domain = PyUnicode_FromString (g_quark_to_string
          (error->domain));
      PyObject *code = PyLong_FromLong (error->code);

      if (domain && code) {
        PyObject_SetAttrString (exc, "domain", domain);
        PyObject_SetAttrString (exc, "code", code);
      }
      Py_XDECREF (domain);
      Py_XDECREF (code);
      PyErr_SetObject (type, exc);
      Py_DECREF (exc);
    }
  } else {
    PyErr_SetString (type, error->message);
  }
  g_error_free (error);
  return NULL;
}

/* ---- Tensor ---- */

typedef struct
{
  PyObject_HEAD GstBuffer *buffer;
  GstMapInfo map;
  gboolean mapped;
  UelDType dtype;
  gchar *name;
  gint ndim;
  int64_t *shape;
  gboolean readonly;
  DLDeviceType device_type;
  gint device_id;
  /* export as raw bytes (uint8) instead of the tensor's own type */
  gboolean raw;
  guint64 chunk_offset;
} TensorObject;

static PyTypeObject TensorType;

static gboolean
dtype_is_sub_byte (UelDType dtype)
{
  return uel_dtype_get_bits (dtype) < 8;
}

static gsize
dtype_size (UelDType dtype)
{
  return uel_dtype_get_bits (dtype) / 8;
}

/* Takes over @buffer (one reference).  A whole tensor with its
 * UelTensorMeta reads as its dtype and shape; a buffer without one (a
 * dictionary made by dict_to_tensor, a transfer of caller memory) or a
 * chunk of a tensor reads as 1-D U8 bytes. */
static PyObject *
tensor_new_take (GstBuffer * buffer)
{
  TensorObject *self;
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (buffer);
  gsize size = gst_buffer_get_size (buffer);
  guint n_mem = gst_buffer_n_memory (buffer);
  GstMapFlags flags = GST_MAP_READ;

  self = PyObject_New (TensorObject, &TensorType);
  if (!self) {
    gst_buffer_unref (buffer);
    return NULL;
  }
  self->buffer = buffer;
  self->mapped = FALSE;
  self->name = NULL;
  self->shape = NULL;
  self->raw = FALSE;
  self->readonly = FALSE;
  self->device_type = DL_CPU;
  self->device_id = 0;
  self->chunk_offset = 0;

  if (meta && meta->chunk_offset == 0 && meta->last_chunk
      && meta->n_bytes == size) {
    guint n_dims;
    const guint64 *shape = uel_tensor_meta_get_shape (meta, &n_dims);

    self->dtype = meta->dtype;
    self->ndim = n_dims;
    self->shape = g_new (int64_t, MAX (n_dims, 1));
    for (guint i = 0; i < n_dims; i++)
      self->shape[i] = (int64_t) shape[i];
  } else {
    self->dtype = UEL_DTYPE_U8;
    self->ndim = 1;
    self->shape = g_new (int64_t, 1);
    self->shape[0] = (int64_t) size;
    if (meta)
      self->chunk_offset = meta->chunk_offset;
  }
  if (meta)
    self->name = g_strdup (uel_tensor_meta_get_name (meta));

  for (guint i = 0; i < n_mem; i++)
    if (GST_MEMORY_IS_READONLY (gst_buffer_peek_memory (buffer, i)))
      self->readonly = TRUE;
  /* device memory maps to its device pointer; it is one memory a tensor */
  if (n_mem == 1 && uel_memory_is_cuda (gst_buffer_peek_memory (buffer, 0))) {
    flags |= UEL_MAP_CUDA;
    self->device_type = DL_CUDA;
    self->device_id = uel_cuda_memory_get_device (gst_buffer_peek_memory
        (buffer, 0));
  }
  if (n_mem > 0) {
    if (!gst_buffer_map (buffer, &self->map, flags)) {
      Py_DECREF (self);
      PyErr_SetString (uel_py_error, "cannot map the tensor's memory");
      return NULL;
    }
    self->mapped = TRUE;
  }
  return (PyObject *) self;
}

static void
tensor_dealloc (TensorObject * self)
{
  if (self->mapped)
    gst_buffer_unmap (self->buffer, &self->map);
  if (self->buffer)
    gst_buffer_unref (self->buffer);
  g_free (self->name);
  g_free (self->shape);
  PyObject_Free (self);
}

/* NumPy refuses a NULL address even for an empty array: empty tensors
 * point here */
static guint64 empty_tensor_data;

static guint8 *
tensor_data (TensorObject * self)
{
  if (!self->mapped || !self->map.data)
    return (guint8 *) & empty_tensor_data;
  return self->map.data;
}

static gsize
tensor_nbytes (TensorObject * self)
{
  return self->mapped ? self->map.size : 0;
}

/* the shape and type exported: the tensor's own, or its bytes */
static gint
tensor_export_shape (TensorObject * self, int64_t * shape, DLDataType * dl,
    const char **typestr)
{
  UelDType d = self->dtype;
  gint ndim = self->ndim;

  memcpy (shape, self->shape, sizeof (int64_t) * ndim);
  dl->lanes = 1;
  dl->bits = 8;
  dl->code = DL_UINT;
  if (typestr)
    *typestr = "|u1";

  if (dtype_is_sub_byte (d)) {
    /* packed: only the bytes have a shape */
    shape[0] = (int64_t) tensor_nbytes (self);
    return 1;
  }
  if (self->raw && dtype_size (d) > 1) {
    gsize es = dtype_size (d);

    if (ndim == 0) {
      shape[0] = (int64_t) es;
      return 1;
    }
    shape[ndim - 1] *= es;
    return ndim;
  }

  dl->bits = uel_dtype_get_bits (d);
  switch (d) {
    case UEL_DTYPE_F16:
    case UEL_DTYPE_F32:
    case UEL_DTYPE_F64:
      dl->code = DL_FLOAT;
      if (typestr)
        *typestr = d == UEL_DTYPE_F16 ? "<f2" : d == UEL_DTYPE_F32 ? "<f4" :
            "<f8";
      break;
    case UEL_DTYPE_BF16:
      dl->code = DL_BFLOAT;
      if (typestr)
        *typestr = "<u2";
      break;
    case UEL_DTYPE_C64:
      dl->code = DL_COMPLEX;
      if (typestr)
        *typestr = "<c8";
      break;
    case UEL_DTYPE_I8:
    case UEL_DTYPE_I16:
    case UEL_DTYPE_I32:
    case UEL_DTYPE_I64:
      dl->code = DL_INT;
      if (typestr)
        *typestr = d == UEL_DTYPE_I8 ? "|i1" : d == UEL_DTYPE_I16 ? "<i2" :
            d == UEL_DTYPE_I32 ? "<i4" : "<i8";
      break;
    case UEL_DTYPE_BOOL:
      /* DLPack's kDLBool is newer than the consumers of Debian 12: the
       * bytes go as uint8, the Python layer views them as bool */
      if (typestr)
        *typestr = "|b1";
      break;
    default:
      /* unsigned integers and the 8-bit floats, as unsigned integers of
       * their size */
      dl->code = DL_UINT;
      if (typestr)
        *typestr = dl->bits == 8 ? "|u1" : dl->bits == 16 ? "<u2" :
            dl->bits == 32 ? "<u4" : "<u8";
      break;
  }
  return ndim;
}

static void
dl_deleter (DLManagedTensor * managed)
{
  PyGILState_STATE gil = PyGILState_Ensure ();

  Py_DECREF ((PyObject *) managed->manager_ctx);
  PyGILState_Release (gil);
  g_free (managed->dl_tensor.shape);
  g_free (managed);
}

/* A capsule that no consumer took (its name is still "dltensor") owns its
 * tensor; one that was taken ("used_dltensor") is the consumer's to free. */
static void
dl_capsule_destructor (PyObject * capsule)
{
  PyObject *type, *value, *tb;
  DLManagedTensor *managed;

  if (!PyCapsule_IsValid (capsule, DLTENSOR_NAME))
    return;
  PyErr_Fetch (&type, &value, &tb);
  managed = PyCapsule_GetPointer (capsule, DLTENSOR_NAME);
  if (managed && managed->deleter)
    managed->deleter (managed);
  else
    PyErr_Clear ();
  PyErr_Restore (type, value, tb);
}

static PyObject *
tensor_dlpack (TensorObject * self, PyObject * args, PyObject * kwargs)
{
  DLManagedTensor *managed;
  PyObject *capsule;

  /* stream, max_version, dl_device, copy: accepted and unused.  A device
   * tensor is complete when it is returned (the library waits for its
   * copy), so it is safe on any stream. */
  managed = g_new0 (DLManagedTensor, 1);
  managed->dl_tensor.shape = g_new (int64_t, MAX (self->ndim, 1));
  managed->dl_tensor.ndim = tensor_export_shape (self,
      managed->dl_tensor.shape, &managed->dl_tensor.dtype, NULL);
  managed->dl_tensor.data = tensor_data (self);
  managed->dl_tensor.device.device_type = self->device_type;
  managed->dl_tensor.device.device_id = self->device_id;
  managed->dl_tensor.strides = NULL;
  managed->dl_tensor.byte_offset = 0;
  managed->manager_ctx = self;
  managed->deleter = dl_deleter;
  Py_INCREF (self);

  capsule = PyCapsule_New (managed, DLTENSOR_NAME, dl_capsule_destructor);
  if (!capsule)
    managed->deleter (managed);
  return capsule;
}

static PyObject *
tensor_dlpack_device (TensorObject * self, PyObject * unused)
{
  return Py_BuildValue ("(ii)", (int) self->device_type, self->device_id);
}

static PyObject *
tensor_get_array_interface (TensorObject * self, void *closure)
{
  int64_t shape[64];
  DLDataType dl;
  const char *typestr;
  gint ndim;
  PyObject *shape_t, *res;

  if (self->device_type != DL_CPU) {
    PyErr_SetString (PyExc_AttributeError, "__array_interface__: the "
        "tensor is in CUDA device memory; use DLPack (torch.from_dlpack)");
    return NULL;
  }
  if (self->ndim > 64) {
    PyErr_SetString (PyExc_AttributeError, "__array_interface__: more "
        "than 64 dimensions");
    return NULL;
  }
  ndim = tensor_export_shape (self, shape, &dl, &typestr);
  shape_t = PyTuple_New (ndim);
  if (!shape_t)
    return NULL;
  for (gint i = 0; i < ndim; i++)
    PyTuple_SET_ITEM (shape_t, i, PyLong_FromLongLong (shape[i]));
  res = Py_BuildValue ("{s:N,s:s,s:(NO),s:i}", "shape", shape_t, "typestr",
      typestr, "data", PyLong_FromVoidPtr (tensor_data (self)),
      self->readonly ? Py_True : Py_False, "version", 3);
  return res;
}

/* No buffer protocol: NumPy prefers it to __array_interface__ and would
 * see bytes where the interface gives the dtype and shape. */
static PyObject *
tensor_tobytes (TensorObject * self, PyObject * unused)
{
  if (self->device_type != DL_CPU) {
    PyErr_SetString (PyExc_ValueError, "the tensor is in CUDA device memory");
    return NULL;
  }
  return PyBytes_FromStringAndSize ((const char *) tensor_data (self),
      tensor_nbytes (self));
}

static PyObject *
tensor_get_name (TensorObject * self, void *closure)
{
  if (!self->name)
    Py_RETURN_NONE;
  return PyUnicode_FromString (self->name);
}

static PyObject *
tensor_get_dtype (TensorObject * self, void *closure)
{
  return PyUnicode_FromString (uel_dtype_to_string (self->dtype));
}

static PyObject *
tensor_get_shape (TensorObject * self, void *closure)
{
  PyObject *t = PyTuple_New (self->ndim);

  if (!t)
    return NULL;
  for (gint i = 0; i < self->ndim; i++)
    PyTuple_SET_ITEM (t, i, PyLong_FromLongLong (self->shape[i]));
  return t;
}

static PyObject *
tensor_get_nbytes (TensorObject * self, void *closure)
{
  return PyLong_FromSize_t (tensor_nbytes (self));
}

static PyObject *
tensor_get_device (TensorObject * self, void *closure)
{
  if (self->device_type == DL_CUDA)
    return PyUnicode_FromFormat ("cuda:%d", self->device_id);
  return PyUnicode_FromString ("cpu");
}

static PyObject *
tensor_get_readonly (TensorObject * self, void *closure)
{
  return PyBool_FromLong (self->readonly);
}

static PyObject *
tensor_get_raw (TensorObject * self, void *closure)
{
  return PyBool_FromLong (self->raw);
}

static int
tensor_set_raw (TensorObject * self, PyObject * value, void *closure)
{
  int r = value ? PyObject_IsTrue (value) : 0;

  if (r < 0)
    return -1;
  self->raw = r;
  return 0;
}

static PyObject *
tensor_get_data_ptr (TensorObject * self, void *closure)
{
  return PyLong_FromVoidPtr (tensor_data (self));
}

static PyObject *
tensor_get_chunk_offset (TensorObject * self, void *closure)
{
  return PyLong_FromUnsignedLongLong (self->chunk_offset);
}

static PyObject *
tensor_repr (TensorObject * self)
{
  PyObject *shape = tensor_get_shape (self, NULL);
  PyObject *r;

  if (!shape)
    return NULL;
  r = PyUnicode_FromFormat ("<gst_uel Tensor %s %s %R on %s, %zu bytes>",
      self->name ? self->name : "(unnamed)", uel_dtype_to_string (self->dtype),
      shape, self->device_type == DL_CUDA ? "cuda" : "cpu",
      tensor_nbytes (self));
  Py_DECREF (shape);
  return r;
}

static PyMethodDef tensor_methods[] = {
  {"__dlpack__", (PyCFunction) (void (*)(void)) tensor_dlpack,
      METH_VARARGS | METH_KEYWORDS,
      "__dlpack__(stream=None)\n--\n\nA DLPack capsule sharing the "
        "tensor's memory; it keeps the tensor alive."},
  {"tobytes", (PyCFunction) tensor_tobytes, METH_NOARGS,
      "tobytes()\n--\n\nA copy of the tensor's bytes (host memory only)."},
  {"__dlpack_device__", (PyCFunction) tensor_dlpack_device, METH_NOARGS,
      "__dlpack_device__()\n--\n\n(device type, device id) as DLPack "
        "numbers: (1, 0) host memory, (2, n) CUDA device n."},
  {NULL}
};

static PyGetSetDef tensor_getset[] = {
  {"__array_interface__", (getter) tensor_get_array_interface, NULL,
      "NumPy's array interface (version 3), host memory only", NULL},
  {"name", (getter) tensor_get_name, NULL, "the tensor's name, or None",
      NULL},
  {"dtype", (getter) tensor_get_dtype, NULL,
      "the safetensors dtype name ('F32', 'BF16', ...)", NULL},
  {"shape", (getter) tensor_get_shape, NULL, "the shape, a tuple", NULL},
  {"nbytes", (getter) tensor_get_nbytes, NULL, "the size in bytes", NULL},
  {"device", (getter) tensor_get_device, NULL, "'cpu' or 'cuda:N'", NULL},
  {"readonly", (getter) tensor_get_readonly, NULL,
      "whether the memory is read-only (a mapping of the file)", NULL},
  {"raw", (getter) tensor_get_raw, (setter) tensor_set_raw,
      "export the bytes as uint8 (the last dimension times the element "
        "size) instead of the tensor's own type", NULL},
  {"data_ptr", (getter) tensor_get_data_ptr, NULL,
      "the address of the first byte", NULL},
  {"chunk_offset", (getter) tensor_get_chunk_offset, NULL,
      "where a chunk's bytes start within its tensor (0 for whole tensors)",
      NULL},
  {NULL}
};

static PyTypeObject TensorType = {
  PyVarObject_HEAD_INIT (NULL, 0)
      .tp_name = "gst_uel._native.Tensor",
  .tp_basicsize = sizeof (TensorObject),
  .tp_dealloc = (destructor) tensor_dealloc,
  .tp_repr = (reprfunc) tensor_repr,
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_doc = "One tensor: a reference to its GstBuffer, mapped once.\n\n"
      "numpy.asarray(t), numpy.from_dlpack(t) and torch.from_dlpack(t) "
      "share its memory without a copy and keep it alive.",
  .tp_methods = tensor_methods,
  .tp_getset = tensor_getset,
};

/* ---- Loader ---- */

typedef struct
{
  PyObject_HEAD UelLoader *loader;
} LoaderObject;

static PyTypeObject LoaderType;

static int
loader_init (LoaderObject * self, PyObject * args, PyObject * kwargs)
{
  static char *kwlist[] = { "filename", "low_memory", "direct_gpu",
    "use_mmap", NULL
  };
  PyObject *path_obj = NULL;
  int low_memory = 0, direct_gpu = 0, use_mmap = 0;
  const char *path;
  GError *error = NULL;
  UelLoader *loader;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "O&|ppp", kwlist,
          PyUnicode_FSConverter, &path_obj, &low_memory, &direct_gpu,
          &use_mmap))
    return -1;
  path = PyBytes_AS_STRING (path_obj);
  Py_BEGIN_ALLOW_THREADS;
  loader = uel_loader_new_full (path, low_memory, direct_gpu, use_mmap,
      &error);
  Py_END_ALLOW_THREADS;
  Py_DECREF (path_obj);
  if (!loader) {
    raise_gerror (error, FALSE);
    return -1;
  }
  g_clear_object (&self->loader);
  self->loader = loader;
  return 0;
}

static void
loader_dealloc (LoaderObject * self)
{
  UelLoader *loader = self->loader;

  self->loader = NULL;
  if (loader) {
    Py_BEGIN_ALLOW_THREADS;
    g_object_unref (loader);
    Py_END_ALLOW_THREADS;
  }
  Py_TYPE (self)->tp_free ((PyObject *) self);
}

static gboolean
loader_check (LoaderObject * self)
{
  if (!self->loader) {
    PyErr_SetString (PyExc_ValueError, "the loader is closed");
    return FALSE;
  }
  return TRUE;
}

static PyObject *
loader_close (LoaderObject * self, PyObject * unused)
{
  UelLoader *loader = self->loader;

  self->loader = NULL;
  if (loader) {
    Py_BEGIN_ALLOW_THREADS;
    g_object_unref (loader);
    Py_END_ALLOW_THREADS;
  }
  Py_RETURN_NONE;
}

static PyObject *
loader_keys (LoaderObject * self, PyObject * unused)
{
  gchar **keys;
  PyObject *list;
  guint n;

  if (!loader_check (self))
    return NULL;
  keys = uel_loader_keys (self->loader);
  n = g_strv_length (keys);
  list = PyList_New (n);
  for (guint i = 0; list && i < n; i++) {
    PyObject *s = PyUnicode_FromString (keys[i]);

    if (!s) {
      Py_CLEAR (list);
      break;
    }
    PyList_SET_ITEM (list, i, s);
  }
  g_strfreev (keys);
  return list;
}

static PyObject *
loader_metadata (LoaderObject * self, PyObject * unused)
{
  GHashTable *meta;
  GHashTableIter iter;
  gpointer k, v;
  PyObject *dict;

  if (!loader_check (self))
    return NULL;
  dict = PyDict_New ();
  meta = uel_loader_get_metadata (self->loader);
  if (!dict || !meta)
    return dict;
  g_hash_table_iter_init (&iter, meta);
  while (g_hash_table_iter_next (&iter, &k, &v)) {
    PyObject *val = PyUnicode_FromString (v);

    if (!val || PyDict_SetItemString (dict, k, val) < 0) {
      Py_XDECREF (val);
      Py_DECREF (dict);
      return NULL;
    }
    Py_DECREF (val);
  }
  return dict;
}

static PyObject *
loader_info (LoaderObject * self, PyObject * args)
{
  const char *key;
  const UelTensorInfo *info;
  const guint64 *shape;
  guint n_dims;
  GError *error = NULL;
  PyObject *shape_t;

  if (!PyArg_ParseTuple (args, "s", &key) || !loader_check (self))
    return NULL;
  info = uel_loader_get_tensor_info (self->loader, key, &error);
  if (!info)
    return raise_gerror (error, TRUE);
  shape = uel_tensor_info_get_shape (info, &n_dims);
  shape_t = PyTuple_New (n_dims);
  if (!shape_t)
    return NULL;
  for (guint i = 0; i < n_dims; i++)
    PyTuple_SET_ITEM (shape_t, i, PyLong_FromUnsignedLongLong (shape[i]));
  return Py_BuildValue ("(sNKK)", uel_dtype_to_string (info->dtype), shape_t,
      (unsigned long long) info->n_bytes,
      (unsigned long long) info->data_begin);
}

static PyObject *
loader_contains (LoaderObject * self, PyObject * args)
{
  const char *key;

  if (!PyArg_ParseTuple (args, "s", &key) || !loader_check (self))
    return NULL;
  return PyBool_FromLong (uel_loader_contains (self->loader, key));
}

static PyObject *
loader_get_tensor (LoaderObject * self, PyObject * args)
{
  const char *key;
  GError *error = NULL;
  GstBuffer *buf;

  if (!PyArg_ParseTuple (args, "s", &key) || !loader_check (self))
    return NULL;
  Py_BEGIN_ALLOW_THREADS;
  buf = uel_loader_get_tensor (self->loader, key, &error);
  Py_END_ALLOW_THREADS;
  if (!buf)
    return raise_gerror (error, TRUE);
  return tensor_new_take (buf);
}

static PyObject *
loader_mark_processed (LoaderObject * self, PyObject * args)
{
  const char *key;
  gboolean r;

  if (!PyArg_ParseTuple (args, "s", &key) || !loader_check (self))
    return NULL;
  Py_BEGIN_ALLOW_THREADS;
  r = uel_loader_mark_processed (self->loader, key);
  Py_END_ALLOW_THREADS;
  return PyBool_FromLong (r);
}

static PyObject *
loader_get_preloaded_bytes (LoaderObject * self, PyObject * unused)
{
  if (!loader_check (self))
    return NULL;
  return PyLong_FromUnsignedLongLong (uel_loader_get_preloaded_bytes
      (self->loader));
}

static PyObject *
loader_get_flag (LoaderObject * self, void *closure)
{
  const char *which = closure;

  if (!loader_check (self))
    return NULL;
  if (g_str_equal (which, "low_memory"))
    return PyBool_FromLong (uel_loader_get_low_memory (self->loader));
  if (g_str_equal (which, "use_mmap"))
    return PyBool_FromLong (uel_loader_get_use_mmap (self->loader));
  if (g_str_equal (which, "direct_gpu"))
    return PyBool_FromLong (uel_loader_get_direct_gpu (self->loader));
  return PyUnicode_DecodeFSDefault (uel_loader_get_location (self->loader));
}

/* ---- TensorStream ---- */

typedef struct
{
  PyObject_HEAD UelTensorStream *stream;
  PyObject *loader;
} StreamObject;

static PyTypeObject StreamType;

static PyObject *
loader_async_stream (LoaderObject * self, PyObject * args, PyObject * kwargs)
{
  static char *kwlist[] = { "keys", "batch_size", "prefetch_batches",
    "pin_memory", NULL
  };
  PyObject *keys_obj = Py_None, *seq = NULL;
  unsigned int batch_size = 1, prefetch = 2;
  int pin = 0;
  gchar **keys = NULL;
  GError *error = NULL;
  UelTensorStream *stream;
  StreamObject *so;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "|OIIp", kwlist, &keys_obj,
          &batch_size, &prefetch, &pin) || !loader_check (self))
    return NULL;
  if (keys_obj != Py_None) {
    Py_ssize_t n;

    seq = PySequence_Fast (keys_obj, "keys must be a sequence of names");
    if (!seq)
      return NULL;
    n = PySequence_Fast_GET_SIZE (seq);
    keys = g_new0 (gchar *, n + 1);
    for (Py_ssize_t i = 0; i < n; i++) {
      const char *k = PyUnicode_AsUTF8 (PySequence_Fast_GET_ITEM (seq, i));

      if (!k) {
        g_strfreev (keys);
        Py_DECREF (seq);
        return NULL;
      }
      keys[i] = g_strdup (k);
    }
    Py_DECREF (seq);
  }
  Py_BEGIN_ALLOW_THREADS;
  stream = uel_loader_async_stream (self->loader,
      (const gchar * const *) keys, batch_size, prefetch, pin, &error);
  Py_END_ALLOW_THREADS;
  g_strfreev (keys);
  if (!stream)
    return raise_gerror (error, TRUE);
  so = PyObject_New (StreamObject, &StreamType);
  if (!so) {
    g_object_unref (stream);
    return NULL;
  }
  so->stream = stream;
  so->loader = (PyObject *) self;
  Py_INCREF (self);
  return (PyObject *) so;
}

static void
stream_stop (StreamObject * self)
{
  UelTensorStream *stream = self->stream;

  self->stream = NULL;
  if (stream) {
    /* joins the reading thread, which may be in a read */
    Py_BEGIN_ALLOW_THREADS;
    g_object_unref (stream);
    Py_END_ALLOW_THREADS;
  }
}

static void
stream_dealloc (StreamObject * self)
{
  stream_stop (self);
  Py_CLEAR (self->loader);
  PyObject_Free (self);
}

static PyObject *
stream_close (StreamObject * self, PyObject * unused)
{
  stream_stop (self);
  Py_RETURN_NONE;
}

/* (name, tensor); takes over @t */
static PyObject *
pair_new_take (PyObject * t)
{
  const gchar *name = ((TensorObject *) t)->name;
  PyObject *pair = Py_BuildValue ("(NN)", name ? PyUnicode_FromString (name)
      : (Py_INCREF (Py_None), Py_None), t);

  return pair;
}

static PyObject *
batch_to_list (GPtrArray * batch)
{
  PyObject *list = PyList_New (batch->len);

  for (guint i = 0; list && i < batch->len; i++) {
    GstBuffer *buf = gst_buffer_ref (g_ptr_array_index (batch, i));
    PyObject *t = tensor_new_take (buf);
    PyObject *pair;

    if (!t) {
      Py_CLEAR (list);
      break;
    }
    pair = pair_new_take (t);
    if (!pair) {
      Py_CLEAR (list);
      break;
    }
    PyList_SET_ITEM (list, i, pair);
  }
  g_ptr_array_unref (batch);
  return list;
}

static PyObject *
stream_next (StreamObject * self)
{
  GPtrArray *batch;
  GError *error = NULL;

  if (!self->stream)
    return NULL;
  Py_BEGIN_ALLOW_THREADS;
  batch = uel_tensor_stream_next (self->stream, &error);
  Py_END_ALLOW_THREADS;
  if (!batch) {
    stream_stop (self);
    if (error)
      return raise_gerror (error, FALSE);
    return NULL;
  }
  return batch_to_list (batch);
}

static PyObject *
stream_stats (StreamObject * self, PyObject * unused)
{
  UelTensorStreamStats s;

  if (!self->stream)
    Py_RETURN_NONE;
  uel_tensor_stream_get_stats (self->stream, &s);
  return Py_BuildValue ("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}",
      "batches", s.batches, "tensors", s.tensors, "bytes", s.bytes,
      "live_tensors", s.live_tensors, "live_bytes", s.live_bytes,
      "peak_live_tensors", s.peak_live_tensors, "peak_live_bytes",
      s.peak_live_bytes, "pinned_pool_bytes", s.pinned_pool_bytes);
}

static PyMethodDef stream_methods[] = {
  {"close", (PyCFunction) stream_close, METH_NOARGS,
      "Stops reading; the batches already returned stay valid."},
  {"stats", (PyCFunction) stream_stats, METH_NOARGS,
      "The stream's counters (UelTensorStreamStats) as a dict, or None "
        "once it is closed."},
  {NULL}
};

static PyTypeObject StreamType = {
  PyVarObject_HEAD_INIT (NULL, 0)
      .tp_name = "gst_uel._native.TensorStream",
  .tp_basicsize = sizeof (StreamObject),
  .tp_dealloc = (destructor) stream_dealloc,
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_doc = "Batches of (key, Tensor) read ahead by the library's thread "
      "(uel_loader_async_stream).",
  .tp_iter = PyObject_SelfIter,
  .tp_iternext = (iternextfunc) stream_next,
  .tp_methods = stream_methods,
};

static PyObject *
loader_load_all (LoaderObject * self, PyObject * unused)
{
  GHashTable *all;
  GHashTableIter iter;
  gpointer k, v;
  GError *error = NULL;
  PyObject *dict;

  if (!loader_check (self))
    return NULL;
  Py_BEGIN_ALLOW_THREADS;
  all = uel_loader_load_all (self->loader, &error);
  Py_END_ALLOW_THREADS;
  if (!all)
    return raise_gerror (error, FALSE);
  dict = PyDict_New ();
  g_hash_table_iter_init (&iter, all);
  while (dict && g_hash_table_iter_next (&iter, &k, &v)) {
    PyObject *t = tensor_new_take (gst_buffer_ref (v));

    if (!t || PyDict_SetItemString (dict, k, t) < 0)
      Py_CLEAR (dict);
    Py_XDECREF (t);
  }
  g_hash_table_unref (all);
  return dict;
}

static PyMethodDef loader_methods[] = {
  {"close", (PyCFunction) loader_close, METH_NOARGS,
      "Releases the file and the preloaded tensors (tensors handed out "
        "stay valid)."},
  {"keys", (PyCFunction) loader_keys, METH_NOARGS,
      "The tensor names, in the order of their bytes in the file."},
  {"metadata", (PyCFunction) loader_metadata, METH_NOARGS,
      "The __metadata__ map, a dict of str."},
  {"info", (PyCFunction) loader_info, METH_VARARGS,
      "info(key) -> (dtype name, shape, byte size, offset in the data "
        "section), from the header."},
  {"contains", (PyCFunction) loader_contains, METH_VARARGS,
      "contains(key) -> whether the file has that tensor."},
  {"get_tensor", (PyCFunction) loader_get_tensor, METH_VARARGS,
      "get_tensor(key) -> Tensor."},
  {"mark_processed", (PyCFunction) loader_mark_processed, METH_VARARGS,
      "mark_processed(key) -> whether a preloaded copy was released."},
  {"preloaded_bytes", (PyCFunction) loader_get_preloaded_bytes, METH_NOARGS,
      "Bytes the loader holds preloaded."},
  {"load_all", (PyCFunction) loader_load_all, METH_NOARGS,
      "load_all() -> dict of key: Tensor."},
  {"async_stream", (PyCFunction) (void (*)(void)) loader_async_stream,
        METH_VARARGS | METH_KEYWORDS,
      "async_stream(keys=None, batch_size=1, prefetch_batches=2, "
        "pin_memory=False) -> TensorStream."},
  {NULL}
};

static PyGetSetDef loader_getset[] = {
  {"low_memory", (getter) loader_get_flag, NULL, NULL, "low_memory"},
  {"use_mmap", (getter) loader_get_flag, NULL, NULL, "use_mmap"},
  {"direct_gpu", (getter) loader_get_flag, NULL,
      "whether streams deliver device memory (False after a fallback)",
      "direct_gpu"},
  {"location", (getter) loader_get_flag, NULL, NULL, "location"},
  {NULL}
};

static PyTypeObject LoaderType = {
  PyVarObject_HEAD_INIT (NULL, 0)
      .tp_name = "gst_uel._native.Loader",
  .tp_basicsize = sizeof (LoaderObject),
  .tp_dealloc = (destructor) loader_dealloc,
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_doc = "Loader(filename, low_memory=False, direct_gpu=False, "
      "use_mmap=False): a UelLoader.",
  .tp_methods = loader_methods,
  .tp_getset = loader_getset,
  .tp_init = (initproc) loader_init,
  .tp_new = PyType_GenericNew,
};

/* ---- the tensors reaching an appsink ---- */

typedef struct
{
  PyObject_HEAD GstElement *pipeline;
  GstElement *sink;
  GstBus *bus;
} PipelineObject;

static PyTypeObject PipelineType;

/* poll period of a wait for the next tensor: how soon Ctrl-C is seen */
#define PULL_TIMEOUT (100 * GST_MSECOND)

static GstElement *
find_appsink (GstElement * pipeline, guint * n_found)
{
  GstIterator *it;
  GValue item = G_VALUE_INIT;
  GstElement *found = NULL;

  *n_found = 0;
  if (!GST_IS_BIN (pipeline))
    return NULL;
  it = gst_bin_iterate_recurse (GST_BIN (pipeline));
  while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&item);
    GstElementFactory *f = gst_element_get_factory (e);

    if (f && g_str_equal (GST_OBJECT_NAME (f), "appsink")) {
      (*n_found)++;
      if (!found)
        found = gst_object_ref (e);
    }
    g_value_reset (&item);
  }
  g_value_unset (&item);
  gst_iterator_free (it);
  return found;
}

static void
pipeline_stop (PipelineObject * self)
{
  GstElement *pipeline = self->pipeline;

  self->pipeline = NULL;
  if (pipeline) {
    Py_BEGIN_ALLOW_THREADS;
    gst_element_set_state (pipeline, GST_STATE_NULL);
    gst_object_unref (pipeline);
    Py_END_ALLOW_THREADS;
  }
  g_clear_pointer (&self->sink, gst_object_unref);
  g_clear_pointer (&self->bus, gst_object_unref);
}

static int
pipeline_init (PipelineObject * self, PyObject * args, PyObject * kwargs)
{
  static char *kwlist[] = { "launch_line", "max_buffers", NULL };
  const char *line;
  unsigned int max_buffers = 4;
  GError *error = NULL;
  GstElement *pipeline = NULL;
  guint n_sinks = 0;
  GstStateChangeReturn ret;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "s|I", kwlist, &line,
          &max_buffers))
    return -1;
  pipeline_stop (self);

  Py_BEGIN_ALLOW_THREADS;
  pipeline = gst_parse_launch (line, &error);
  if (pipeline && !error) {
    self->sink = find_appsink (pipeline, &n_sinks);
    if (!self->sink) {
      /* no appsink: one at the end, bounded, so that a slow consumer
       * holds the pipeline back instead of queueing every tensor */
      gchar *full = g_strdup_printf ("%s ! appsink name=gst-uel-python-sink "
          "sync=false max-buffers=%u", line, MAX (max_buffers, 1));

      gst_object_unref (pipeline);
      pipeline = gst_parse_launch (full, &error);
      g_free (full);
      if (pipeline && !error)
        self->sink = find_appsink (pipeline, &n_sinks);
    }
  }
  Py_END_ALLOW_THREADS;

  if (error) {
    if (pipeline)
      gst_object_unref (pipeline);
    g_clear_pointer (&self->sink, gst_object_unref);
    raise_gerror (error, FALSE);
    return -1;
  }
  if (!self->sink || n_sinks > 1) {
    gst_object_unref (pipeline);
    g_clear_pointer (&self->sink, gst_object_unref);
    PyErr_Format (PyExc_ValueError, "the launch line must end in one "
        "appsink (or none, for one to be added): it has %u", n_sinks);
    return -1;
  }
  self->pipeline = pipeline;
  self->bus = gst_element_get_bus (pipeline);

  Py_BEGIN_ALLOW_THREADS;
  ret = gst_element_set_state (pipeline, GST_STATE_PLAYING);
  Py_END_ALLOW_THREADS;
  if (ret == GST_STATE_CHANGE_FAILURE) {
    GstMessage *msg = gst_bus_pop_filtered (self->bus, GST_MESSAGE_ERROR);

    if (msg) {
      gst_message_parse_error (msg, &error, NULL);
      gst_message_unref (msg);
    } else {
      error = g_error_new (GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE,
          "the pipeline did not start: %s", line);
    }
    pipeline_stop (self);
    raise_gerror (error, FALSE);
    return -1;
  }
  return 0;
}

static void
pipeline_dealloc (PipelineObject * self)
{
  pipeline_stop (self);
  Py_TYPE (self)->tp_free ((PyObject *) self);
}

/* the first error on the bus, as an exception naming the element */
static gboolean
pipeline_raise_bus_error (PipelineObject * self)
{
  GstMessage *msg = gst_bus_pop_filtered (self->bus, GST_MESSAGE_ERROR);
  GError *error = NULL;
  gchar *debug = NULL, *src;

  if (!msg)
    return FALSE;
  gst_message_parse_error (msg, &error, &debug);
  src = gst_object_get_path_string (GST_MESSAGE_SRC (msg));
  PyErr_Format (uel_py_error, "%s: %s%s%s", src, error->message,
      debug ? "\n" : "", debug ? debug : "");
  g_free (src);
  g_free (debug);
  g_error_free (error);
  gst_message_unref (msg);
  return TRUE;
}

static PyObject *
pipeline_next (PipelineObject * self)
{
  while (self->pipeline) {
    GstSample *sample = NULL;
    gboolean eos = FALSE;

    Py_BEGIN_ALLOW_THREADS;
    g_signal_emit_by_name (self->sink, "try-pull-sample",
        (guint64) PULL_TIMEOUT, &sample);
    if (!sample)
      g_object_get (self->sink, "eos", &eos, NULL);
    Py_END_ALLOW_THREADS;

    if (sample) {
      GstBuffer *buf = gst_sample_get_buffer (sample);
      PyObject *t;

      if (buf)
        buf = gst_buffer_ref (buf);
      gst_sample_unref (sample);
      if (!buf)
        continue;
      t = tensor_new_take (buf);
      if (!t)
        return NULL;
      return pair_new_take (t);
    }
    if (pipeline_raise_bus_error (self)) {
      pipeline_stop (self);
      return NULL;
    }
    if (eos) {
      pipeline_stop (self);
      return NULL;
    }
    /* Ctrl-C: KeyboardInterrupt, and the pipeline stops */
    if (PyErr_CheckSignals () < 0) {
      pipeline_stop (self);
      return NULL;
    }
  }
  return NULL;
}

static PyObject *
pipeline_close (PipelineObject * self, PyObject * unused)
{
  pipeline_stop (self);
  Py_RETURN_NONE;
}

static PyMethodDef pipeline_methods[] = {
  {"close", (PyCFunction) pipeline_close, METH_NOARGS,
      "Stops the pipeline (state NULL); tensors already returned stay "
        "valid."},
  {NULL}
};

static PyTypeObject PipelineType = {
  PyVarObject_HEAD_INIT (NULL, 0)
      .tp_name = "gst_uel._native.Pipeline",
  .tp_basicsize = sizeof (PipelineObject),
  .tp_dealloc = (destructor) pipeline_dealloc,
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_doc = "Pipeline(launch_line, max_buffers=4): iterates (name, Tensor) "
      "for every buffer reaching the appsink at its end.",
  .tp_iter = PyObject_SelfIter,
  .tp_iternext = (iternextfunc) pipeline_next,
  .tp_methods = pipeline_methods,
  .tp_init = (initproc) pipeline_init,
  .tp_new = PyType_GenericNew,
};

/* ---- Writer ---- */

typedef struct
{
  PyObject_HEAD UelWriter *writer;
} WriterObject;

static PyTypeObject WriterType;

static int
writer_init (WriterObject * self, PyObject * args, PyObject * kwargs)
{
  static char *kwlist[] = { "filename", "max_header_bytes", NULL };
  PyObject *path_obj = NULL;
  unsigned long long reserve = UEL_WRITER_DEFAULT_HEADER_RESERVE;
  GError *error = NULL;
  UelWriter *writer;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "O&|K", kwlist,
          PyUnicode_FSConverter, &path_obj, &reserve))
    return -1;
  Py_BEGIN_ALLOW_THREADS;
  writer = uel_writer_new_incremental (PyBytes_AS_STRING (path_obj), reserve,
      &error);
  Py_END_ALLOW_THREADS;
  Py_DECREF (path_obj);
  if (!writer) {
    raise_gerror (error, FALSE);
    return -1;
  }
  if (self->writer)
    uel_writer_abort (self->writer);
  g_clear_pointer (&self->writer, uel_writer_free);
  self->writer = writer;
  return 0;
}

static gboolean
writer_check (WriterObject * self)
{
  if (!self->writer) {
    PyErr_SetString (PyExc_ValueError, "the writer is closed");
    return FALSE;
  }
  return TRUE;
}

static PyObject *
writer_set_metadata (WriterObject * self, PyObject * args)
{
  const char *key, *value;
  GError *error = NULL;

  if (!PyArg_ParseTuple (args, "ss", &key, &value) || !writer_check (self))
    return NULL;
  if (!uel_writer_set_metadata (self->writer, key, value, &error))
    return raise_gerror (error, FALSE);
  Py_RETURN_NONE;
}

/* append(name, dtype, shape, data): data is any object with the buffer
 * protocol (the Python layer passes the tensor's bytes) */
static PyObject *
writer_append (WriterObject * self, PyObject * args)
{
  const char *name, *dtype_name;
  PyObject *shape_obj, *seq;
  Py_buffer data;
  UelDType dtype;
  guint64 *shape;
  Py_ssize_t n_dims;
  GError *error = NULL;
  gboolean ok;

  if (!PyArg_ParseTuple (args, "ssOy*", &name, &dtype_name, &shape_obj,
          &data))
    return NULL;
  if (!writer_check (self)) {
    PyBuffer_Release (&data);
    return NULL;
  }
  dtype = uel_dtype_from_string (dtype_name, -1);
  if (dtype == UEL_DTYPE_INVALID) {
    PyBuffer_Release (&data);
    return PyErr_Format (PyExc_ValueError, "unknown dtype '%s'", dtype_name);
  }
  seq = PySequence_Fast (shape_obj, "shape must be a sequence");
  if (!seq) {
    PyBuffer_Release (&data);
    return NULL;
  }
  n_dims = PySequence_Fast_GET_SIZE (seq);
  shape = g_new (guint64, MAX (n_dims, 1));
  for (Py_ssize_t i = 0; i < n_dims; i++) {
    shape[i] = PyLong_AsUnsignedLongLong (PySequence_Fast_GET_ITEM (seq, i));
    if (PyErr_Occurred ()) {
      g_free (shape);
      Py_DECREF (seq);
      PyBuffer_Release (&data);
      return NULL;
    }
  }
  Py_DECREF (seq);
  Py_BEGIN_ALLOW_THREADS;
  ok = uel_writer_append_tensor (self->writer, name, dtype, n_dims,
      n_dims ? shape : NULL, data.buf, data.len, &error);
  Py_END_ALLOW_THREADS;
  g_free (shape);
  PyBuffer_Release (&data);
  if (!ok)
    return raise_gerror (error, FALSE);
  Py_RETURN_NONE;
}

static PyObject *
writer_finish (WriterObject * self, PyObject * unused)
{
  GError *error = NULL;
  gboolean ok;

  if (!writer_check (self))
    return NULL;
  Py_BEGIN_ALLOW_THREADS;
  ok = uel_writer_finish (self->writer, &error);
  Py_END_ALLOW_THREADS;
  g_clear_pointer (&self->writer, uel_writer_free);
  if (!ok)
    return raise_gerror (error, FALSE);
  Py_RETURN_NONE;
}

static PyObject *
writer_abort (WriterObject * self, PyObject * unused)
{
  if (self->writer)
    uel_writer_abort (self->writer);
  g_clear_pointer (&self->writer, uel_writer_free);
  Py_RETURN_NONE;
}

static void
writer_dealloc (WriterObject * self)
{
  if (self->writer)
    uel_writer_abort (self->writer);
  g_clear_pointer (&self->writer, uel_writer_free);
  Py_TYPE (self)->tp_free ((PyObject *) self);
}

static PyMethodDef writer_methods[] = {
  {"set_metadata", (PyCFunction) writer_set_metadata, METH_VARARGS,
      "set_metadata(key, value)"},
  {"append", (PyCFunction) writer_append, METH_VARARGS,
      "append(name, dtype, shape, data): declares a tensor and writes its "
        "bytes (any object with the buffer protocol)."},
  {"finish", (PyCFunction) writer_finish, METH_NOARGS,
      "Writes the header and renames the temporary file into place."},
  {"abort", (PyCFunction) writer_abort, METH_NOARGS,
      "Removes the temporary file; nothing is written at the final name."},
  {NULL}
};

static PyTypeObject WriterType = {
  PyVarObject_HEAD_INIT (NULL, 0)
      .tp_name = "gst_uel._native.Writer",
  .tp_basicsize = sizeof (WriterObject),
  .tp_dealloc = (destructor) writer_dealloc,
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_doc = "Writer(filename, max_header_bytes=1 MiB): an incremental "
      "UelWriter.",
  .tp_methods = writer_methods,
  .tp_init = (initproc) writer_init,
  .tp_new = PyType_GenericNew,
};

/* ---- module functions ---- */

static PyObject *
py_dict_to_tensor (PyObject * mod, PyObject * args)
{
  const char *json;
  Py_ssize_t len;
  GError *error = NULL;
  JsonNode *node;
  GstBuffer *buf;

  if (!PyArg_ParseTuple (args, "s#", &json, &len))
    return NULL;
  node = json_from_string (json, &error);
  if (!node)
    return raise_gerror (error, FALSE);
  buf = uel_dict_to_tensor (node, &error);
  json_node_unref (node);
  if (!buf)
    return raise_gerror (error, FALSE);
  return tensor_new_take (buf);
}

static PyObject *
py_tensor_to_dict (PyObject * mod, PyObject * args)
{
  PyObject *obj;
  GstBuffer *buf;
  GError *error = NULL;
  JsonNode *node;
  gchar *text;
  PyObject *res;

  if (!PyArg_ParseTuple (args, "O", &obj))
    return NULL;
  if (PyObject_TypeCheck (obj, &TensorType)) {
    buf = gst_buffer_ref (((TensorObject *) obj)->buffer);
  } else {
    Py_buffer view;

    if (PyObject_GetBuffer (obj, &view, PyBUF_SIMPLE) < 0)
      return NULL;
    /* dictionaries are small (UEL_DICT_MAX_SIZE): a copy is simplest */
    buf = gst_buffer_new_memdup (view.buf, view.len);
    PyBuffer_Release (&view);
  }
  Py_BEGIN_ALLOW_THREADS;
  node = uel_tensor_to_dict (buf, &error);
  Py_END_ALLOW_THREADS;
  gst_buffer_unref (buf);
  if (!node)
    return raise_gerror (error, FALSE);
  text = json_to_string (node, FALSE);
  json_node_unref (node);
  res = PyUnicode_FromString (text);
  g_free (text);
  return res;
}

typedef struct
{
  PyObject *owner;
} Owner;

static void
owner_release (gpointer data)
{
  Owner *o = data;
  PyGILState_STATE gil = PyGILState_Ensure ();

  Py_DECREF (o->owner);
  PyGILState_Release (gil);
  g_free (o);
}

/* transfer(source, device, dtype): source is a Tensor, or (owner, address,
 * size) for caller memory that owner keeps alive; the buffer wrapping it
 * holds owner until the library is done with it */
static PyObject *
py_transfer (PyObject * mod, PyObject * args)
{
  PyObject *src;
  int device = 0;
  const char *dtype_name = NULL;
  UelDType dtype = UEL_DTYPE_INVALID;
  GstBuffer *buf, *out;
  GError *error = NULL;

  if (!PyArg_ParseTuple (args, "O|iz", &src, &device, &dtype_name))
    return NULL;
  if (dtype_name) {
    dtype = uel_dtype_from_string (dtype_name, -1);
    if (dtype == UEL_DTYPE_INVALID)
      return PyErr_Format (PyExc_ValueError, "unknown dtype '%s'",
          dtype_name);
  }
  if (PyObject_TypeCheck (src, &TensorType)) {
    buf = gst_buffer_ref (((TensorObject *) src)->buffer);
  } else {
    PyObject *owner, *addr_obj;
    void *addr;
    unsigned long long size;
    Owner *o;

    if (!PyArg_ParseTuple (src, "OOK", &owner, &addr_obj, &size))
      return NULL;
    addr = PyLong_AsVoidPtr (addr_obj);
    if (!addr && PyErr_Occurred ())
      return NULL;
    o = g_new (Owner, 1);
    o->owner = owner;
    Py_INCREF (owner);
    buf = gst_buffer_new_wrapped_full (GST_MEMORY_FLAG_READONLY, addr, size,
        0, size, o, owner_release);
  }
  Py_BEGIN_ALLOW_THREADS;
  out = uel_transfer_to_gpu_pinned (buf, device, dtype, &error);
  gst_buffer_unref (buf);
  Py_END_ALLOW_THREADS;
  if (!out)
    return raise_gerror (error, FALSE);
  return tensor_new_take (out);
}

static PyObject *
py_get_pinned_transfer_stats (PyObject * mod, PyObject * unused)
{
  guint64 pinned = 0, fallback = 0;

  uel_pinned_transfer_get_stats (&pinned, &fallback);
  return Py_BuildValue ("{s:K,s:K}", "pinned", (unsigned long long) pinned,
      "fallback", (unsigned long long) fallback);
}

static PyObject *
py_reset_pinned_transfer_stats (PyObject * mod, PyObject * unused)
{
  uel_pinned_transfer_reset_stats ();
  Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
  {"dict_to_tensor", py_dict_to_tensor, METH_VARARGS,
      "dict_to_tensor(json_text) -> Tensor (1-D U8, uel_dict_to_tensor)."},
  {"tensor_to_dict", py_tensor_to_dict, METH_VARARGS,
      "tensor_to_dict(tensor_or_bytes) -> the JSON text "
        "(uel_tensor_to_dict)."},
  {"transfer", py_transfer, METH_VARARGS,
      "transfer(source, device=0, dtype=None) -> Tensor "
        "(uel_transfer_to_gpu_pinned)."},
  {"get_pinned_transfer_stats", py_get_pinned_transfer_stats, METH_NOARGS,
      "{'pinned': n, 'fallback': n}"},
  {"reset_pinned_transfer_stats", py_reset_pinned_transfer_stats,
      METH_NOARGS, "Resets the transfer counters."},
  {NULL}
};

static struct PyModuleDef native_module = {
  PyModuleDef_HEAD_INIT,
  .m_name = "gst_uel._native",
  .m_doc = "libgstuel-1.0 for Python: see the gst_uel package.",
  .m_size = -1,
  .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__native (void);

PyMODINIT_FUNC
PyInit__native (void)
{
  PyObject *m;
  GError *error = NULL;

  if (!gst_init_check (NULL, NULL, &error)) {
    PyErr_Format (PyExc_ImportError, "GStreamer could not be initialized: "
        "%s", error ? error->message : "unknown error");
    g_clear_error (&error);
    return NULL;
  }
  uel_init ();

  if (PyType_Ready (&TensorType) < 0 || PyType_Ready (&LoaderType) < 0
      || PyType_Ready (&StreamType) < 0 || PyType_Ready (&PipelineType) < 0
      || PyType_Ready (&WriterType) < 0)
    return NULL;
  m = PyModule_Create (&native_module);
  if (!m)
    return NULL;
  uel_py_error = PyErr_NewExceptionWithDoc ("gst_uel.Error",
      "An error of libgstuel-1.0 or of a pipeline: the library's message; "
      ".domain (the GError domain's name) and .code (its code: a UelError "
      "value for uel-error-quark) say which.", NULL, NULL);
  Py_INCREF (uel_py_error);
  PyModule_AddObject (m, "Error", uel_py_error);
  Py_INCREF (&TensorType);
  PyModule_AddObject (m, "Tensor", (PyObject *) & TensorType);
  Py_INCREF (&LoaderType);
  PyModule_AddObject (m, "Loader", (PyObject *) & LoaderType);
  Py_INCREF (&StreamType);
  PyModule_AddObject (m, "TensorStream", (PyObject *) & StreamType);
  Py_INCREF (&PipelineType);
  PyModule_AddObject (m, "Pipeline", (PyObject *) & PipelineType);
  Py_INCREF (&WriterType);
  PyModule_AddObject (m, "Writer", (PyObject *) & WriterType);
  return m;
}
