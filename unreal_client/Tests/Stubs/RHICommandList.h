// Stub of RHICommandList.h.
#pragma once

class FRHICommandList
{
};

class FRHICommandListImmediate : public FRHICommandList
{
};
