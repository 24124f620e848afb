# Default CUDA architectures: the GPU's own when nvidia-smi reports one, else
# sm_90 (H100/H200). Never `native` by default: configure must work on a
# machine without a GPU. Users override with -DCMAKE_CUDA_ARCHITECTURES=...
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(_cuvi_arch 90)
  find_program(_cuvi_smi nvidia-smi)
  if(_cuvi_smi)
    execute_process(COMMAND ${_cuvi_smi} --query-gpu=compute_cap --format=csv,noheader
      OUTPUT_VARIABLE _cuvi_cc RESULT_VARIABLE _cuvi_rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_cuvi_rc EQUAL 0 AND _cuvi_cc MATCHES "^([0-9]+)\\.([0-9]+)")
      set(_cuvi_arch "${CMAKE_MATCH_1}${CMAKE_MATCH_2}")
    endif()
  endif()
  set(CMAKE_CUDA_ARCHITECTURES ${_cuvi_arch} CACHE STRING "CUDA architectures")
endif()
