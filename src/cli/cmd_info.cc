// `dualblade info STORE [--json]`: what a store is (superblock), how big, and how full: used and
// free space, largest free extent, fragmentation, and which metadata slot is current. Read-only.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/units.h"
#include "store/store.h"

namespace dualblade::cli {

namespace {

struct InfoArgs {
  std::string path;
  bool json = false;
};

Status RunInfo(const InfoArgs& args) {
  DB_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st,
                      store::Store::Open(args.path, store::StoreOpenOptions{.read_only = true}));
  const store::Superblock& sb = st->superblock();
  const DeviceInfo& dev = st->device().info();
  const store::AllocatorStats a = st->allocator().stats();
  const uint64_t bb = sb.block_bytes;
  const char* slot = st->active_slot() == 0 ? "A" : "B";

  if (args.json) {
    nlohmann::json j = {
        {"path", args.path},
        {"kind", dev.is_block_device ? "block_device" : "file"},
        {"uuid", store::FormatUuid(sb.uuid)},
        {"format_version", sb.format_version},
        {"created_unix_s", sb.created_unix_s},
        {"logical_block_bytes", sb.logical_block_bytes},
        {"block_bytes", sb.block_bytes},
        {"capacity_bytes", sb.capacity_bytes},
        {"device_bytes", dev.size_bytes},
        {"meta_slot_bytes", sb.meta_slot_bytes},
        {"meta_slot_a_offset_bytes", sb.meta_slot_offset_bytes[0]},
        {"meta_slot_b_offset_bytes", sb.meta_slot_offset_bytes[1]},
        {"meta_active_slot", slot},
        {"meta_sequence", st->sequence()},
        {"data_offset_bytes", sb.data_offset_bytes},
        {"data_bytes", sb.data_bytes},
        {"data_blocks", a.total_blocks},
        {"used_bytes", a.used_blocks * bb},
        {"free_bytes", a.free_blocks * bb},
        {"largest_free_extent_bytes", a.largest_free_blocks * bb},
        {"free_extents", a.free_extents},
        {"fragmentation", a.fragmentation()},
    };
    std::printf("%s\n", j.dump(2).c_str());
    return Status::OK();
  }
  auto bytes = [](uint64_t v) {
    return FormatBytes(v) + " (" + std::to_string(v) + " bytes)";
  };
  std::printf("store:           %s (%s)\n", args.path.c_str(),
              dev.is_block_device ? "block device" : "file");
  std::printf("uuid:            %s\n", store::FormatUuid(sb.uuid).c_str());
  std::printf("format version:  %u\n", sb.format_version);
  std::printf("block size:      %u bytes (logical block %u bytes)\n", sb.block_bytes,
              sb.logical_block_bytes);
  std::printf("capacity:        %s\n", bytes(sb.capacity_bytes).c_str());
  std::printf("metadata:        2 slots of %s at offsets %llu and %llu; slot %s in use, sequence %llu\n",
              FormatBytes(sb.meta_slot_bytes).c_str(),
              static_cast<unsigned long long>(sb.meta_slot_offset_bytes[0]),
              static_cast<unsigned long long>(sb.meta_slot_offset_bytes[1]), slot,
              static_cast<unsigned long long>(st->sequence()));
  std::printf("data area:       %s at offset %llu\n", bytes(sb.data_bytes).c_str(),
              static_cast<unsigned long long>(sb.data_offset_bytes));
  std::printf("used:            %s\n", bytes(a.used_blocks * bb).c_str());
  std::printf("free:            %s in %llu extent%s\n", bytes(a.free_blocks * bb).c_str(),
              static_cast<unsigned long long>(a.free_extents), a.free_extents == 1 ? "" : "s");
  std::printf("largest free:    %s\n", bytes(a.largest_free_blocks * bb).c_str());
  std::printf("fragmentation:   %.3f\n", a.fragmentation());
  return Status::OK();
}

}  // namespace

void AddInfoCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand(
      "info", "Show a store's superblock, capacity and allocation (used, free, fragmentation)");
  cmd->add_option("STORE", args->path, "Block device or file holding the store")->required();
  cmd->add_flag("--json", args->json, "Print one JSON object instead of text");
  cmd->callback([args, exit_code] { *exit_code = ReportError("info", RunInfo(*args)); });
}

}  // namespace dualblade::cli
