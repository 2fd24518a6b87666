#include "store/store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "common/aligned_buffer.h"
#include "common/units.h"
#include "store/signatures.h"

namespace dualblade::store {
namespace {

const char* SlotName(uint32_t i) { return i == 0 ? "A" : "B"; }

struct SlotRead {
  Status status;
  SlotHeader header;
  MetadataRecords records;
};

// Reads and verifies one slot: the header block first, then only as much payload as the header
// claims (bounded by the slot size before anything is read).
SlotRead ReadSlot(const BlockDevice& dev, const Superblock& sb, uint32_t i) {
  SlotRead out;
  AlignedBuffer head(sb.block_bytes);
  out.status = dev.PreadDirect(sb.meta_slot_offset_bytes[i], head.span());
  if (!out.status.ok()) return out;
  Result<SlotHeader> h = DecodeSlotHeader(head.span(), i, sb.uuid, sb.meta_slot_bytes);
  if (!h.ok()) {
    out.status = h.status();
    return out;
  }
  out.header = *h;
  const uint64_t total = AlignUp(kSlotHeaderBytes + h->payload_bytes, sb.block_bytes);
  AlignedBuffer full(total);
  out.status = dev.PreadDirect(sb.meta_slot_offset_bytes[i], full.span());
  if (!out.status.ok()) return out;
  Result<MetadataRecords> r = DecodeSlotPayload(full.span(), *h);
  if (!r.ok()) {
    out.status = r.status();
    return out;
  }
  out.records = std::move(r).value();
  return out;
}

// Undoes the creation of a store file when Format fails part-way: a file it created is removed,
// an empty file it grew is truncated back. Disarmed once the store is complete.
class UndoCreate {
 public:
  UndoCreate(const std::string& path, bool created, bool was_empty)
      : path_(path), created_(created), was_empty_(was_empty) {}
  ~UndoCreate() {
    if (!armed_) return;
    if (created_) {
      ::unlink(path_.c_str());
    } else if (was_empty_) {
      (void)::truncate(path_.c_str(), 0);
    }
  }
  void Disarm() { armed_ = false; }

 private:
  std::string path_;
  bool created_, was_empty_;
  bool armed_ = true;
};

}  // namespace

Result<Superblock> Store::Format(const std::string& path, const FormatOptions& opts) {
  if (path.empty()) return Status::InvalidArgument("no store path given");
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return ErrnoStatus("cannot stat " + path, errno);
  if (exists && S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(path + " is a directory, not a block device or a file");
  }
  const bool is_file = !exists || S_ISREG(st.st_mode);
  // A missing or empty file holds nothing to protect; anything else is checked before writing.
  const bool fresh = !exists || (S_ISREG(st.st_mode) && st.st_size == 0);
  if (is_file && fresh) {
    if (opts.size_bytes == 0) {
      return Status::InvalidArgument(path + (exists ? " is empty" : " does not exist") +
                                     "; give --size to create a store file of that size");
    }
    // Refuse a too-small size before creating anything.
    if (Result<Superblock> plan = PlanLayout(opts.size_bytes, 512); !plan.ok()) {
      return plan.status().Annotate("cannot format " + path + " with --size " +
                                    FormatBytes(opts.size_bytes));
    }
  }
  if (is_file && !fresh && opts.size_bytes != 0 &&
      opts.size_bytes != static_cast<uint64_t>(st.st_size)) {
    return Status::InvalidArgument(path + " already exists and is " +
                                   FormatBytes(static_cast<uint64_t>(st.st_size)) + "; --size " +
                                   FormatBytes(opts.size_bytes) +
                                   " does not match (leave out --size to use the whole file)");
  }
  if (exists && !fresh && !opts.force) {
    DB_ASSIGN_OR_RETURN(std::optional<std::string> found, DescribeExistingContent(path));
    if (found) {
      return Status::InvalidArgument(path + " holds " + *found + "; use --force to overwrite it");
    }
  }

  OpenOptions oo;
  oo.create_size_bytes = is_file && fresh ? opts.size_bytes : 0;
  UndoCreate undo(path, !exists, exists && fresh);
  DB_ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> dev, BlockDevice::Open(path, oo));
  const DeviceInfo& info = dev->info();
  uint64_t capacity = info.size_bytes;
  if (info.is_block_device && opts.size_bytes != 0) {
    if (opts.size_bytes > info.size_bytes) {
      return Status::InvalidArgument(path + " holds only " + FormatBytes(info.size_bytes) +
                                     "; --size " + FormatBytes(opts.size_bytes) + " does not fit");
    }
    capacity = opts.size_bytes;
  }
  Result<Superblock> plan = PlanLayout(capacity, info.logical_block_bytes);
  if (!plan.ok()) return plan.status().Annotate("cannot format " + path);
  Superblock sb = *plan;
  DB_ASSIGN_OR_RETURN(sb.uuid, NewUuid());
  sb.created_unix_s = static_cast<uint64_t>(std::time(nullptr));

  if (exists && !fresh && opts.force) DB_RETURN_IF_ERROR(WipeSignatures(path));

  // Order: clear the start (any older superblock goes first, so a crash in between leaves no
  // store rather than a store whose slots belong to another uuid), write the slots, sync, and
  // only then write the superblock that makes it a store.
  AlignedBuffer zeros(kAreaAlignBytes);
  DB_RETURN_IF_ERROR(dev->PwriteDirect(0, zeros.span()));
  DB_RETURN_IF_ERROR(dev->Sync());
  ExtentAllocator empty(sb.data_first_block(), sb.data_blocks());
  MetadataRecords records;
  records[kRecordAllocationTable] = {ExtentAllocator::kRecordVersion, empty.Serialize()};
  DB_ASSIGN_OR_RETURN(AlignedBuffer slot,
                      EncodeSlot(records, 0, sb.uuid, 1, sb.meta_slot_bytes, sb.block_bytes));
  DB_RETURN_IF_ERROR(dev->PwriteDirect(sb.meta_slot_offset_bytes[0], slot.span()));
  DB_RETURN_IF_ERROR(
      dev->PwriteDirect(sb.meta_slot_offset_bytes[1], zeros.span().first(sb.block_bytes)));
  DB_RETURN_IF_ERROR(dev->Sync());
  AlignedBuffer sb_buf(kSuperblockBytes);
  EncodeSuperblock(sb, sb_buf.span().first<kSuperblockBytes>());
  DB_RETURN_IF_ERROR(dev->PwriteDirect(0, sb_buf.span()));
  DB_RETURN_IF_ERROR(dev->Sync());
  undo.Disarm();
  return sb;
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& path, const StoreOpenOptions& opts) {
  OpenOptions oo;
  oo.read_only = opts.read_only;
  DB_ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> dev, BlockDevice::Open(path, oo));
  const DeviceInfo& info = dev->info();
  if (info.size_bytes < kSuperblockBytes) {
    return Status::InvalidArgument(path + " is not a dualblade store (it is smaller than a superblock)");
  }
  AlignedBuffer buf(kSuperblockBytes);
  DB_RETURN_IF_ERROR(dev->PreadDirect(0, buf.span()));
  Result<Superblock> decoded = DecodeSuperblock(buf.span());
  if (!decoded.ok()) {
    if (decoded.status().IsInvalidArgument()) {
      return Status::InvalidArgument(path + " is not a dualblade store (no superblock at byte 0)");
    }
    return decoded.status().Annotate(path);
  }
  const Superblock sb = *decoded;
  if (sb.capacity_bytes > info.size_bytes) {
    return Status::Corruption(path + ": the superblock claims " + FormatBytes(sb.capacity_bytes) +
                              " but the device holds only " + FormatBytes(info.size_bytes) +
                              " (was it truncated?)");
  }
  if (sb.block_bytes % info.logical_block_bytes != 0) {
    return Status::NotSupported(path + ": the store's block size " + std::to_string(sb.block_bytes) +
                                " is not a multiple of the device's logical block size " +
                                std::to_string(info.logical_block_bytes));
  }

  SlotRead slots[2] = {ReadSlot(*dev, sb, 0), ReadSlot(*dev, sb, 1)};
  int best = -1;
  for (int i = 0; i < 2; ++i) {
    if (slots[i].status.ok() && (best < 0 || slots[i].header.sequence > slots[best].header.sequence)) {
      best = i;
    }
  }
  if (best < 0) {
    for (const SlotRead& s : slots) {
      if (s.status.IsNotSupported()) return s.status.Annotate(path);
    }
    return Status::Corruption(path + " has no valid metadata slot (A: " + slots[0].status.message() +
                              "; B: " + slots[1].status.message() + ")");
  }
  MetadataRecords& records = slots[best].records;
  auto it = records.find(kRecordAllocationTable);
  if (it == records.end()) {
    return Status::Corruption(path + ": metadata slot " + SlotName(best) +
                              " holds no allocation table");
  }
  Result<ExtentAllocator> alloc = ExtentAllocator::Deserialize(
      it->second.version, it->second.bytes, sb.data_first_block(), sb.data_blocks());
  if (!alloc.ok()) return alloc.status().Annotate(path);

  std::unique_ptr<Store> store(new Store(std::move(dev), sb, std::move(alloc).value()));
  store->records_ = std::move(records);
  store->active_slot_ = best;
  store->sequence_ = slots[best].header.sequence;
  return store;
}

const MetadataRecord* Store::FindRecord(uint32_t type) const {
  auto it = records_.find(type);
  return it == records_.end() ? nullptr : &it->second;
}

void Store::SetRecord(uint32_t type, MetadataRecord record) {
  DB_CHECK(type != kRecordAllocationTable && type != 0);
  records_[type] = std::move(record);
}

Status Store::Commit() {
  if (dev_->read_only()) {
    return Status::InvalidArgument(dev_->info().path + " was opened read-only; cannot commit");
  }
  records_[kRecordAllocationTable] = {ExtentAllocator::kRecordVersion, allocator_.Serialize()};
  const uint32_t target = static_cast<uint32_t>(1 - active_slot_);
  const uint64_t seq = sequence_ + 1;
  DB_ASSIGN_OR_RETURN(AlignedBuffer buf,
                      EncodeSlot(records_, target, sb_.uuid, seq, sb_.meta_slot_bytes,
                                 sb_.block_bytes));
  DB_RETURN_IF_ERROR(dev_->PwriteDirect(sb_.meta_slot_offset_bytes[target], buf.span()));
  DB_RETURN_IF_ERROR(dev_->Sync());
  active_slot_ = static_cast<int>(target);
  sequence_ = seq;
  return Status::OK();
}

Result<DataArea> ReadDataArea(const std::string& path) {
  DB_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(path, StoreOpenOptions{}));
  return store->data_area();
}

}  // namespace dualblade::store
